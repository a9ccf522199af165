"""Lint and types are part of the suite, so every `tests/run.sh` (and CI) holds the code to them.
Settings: [tool.ruff] and [tool.mypy] in pyproject.toml. To fix: `.venv/bin/ruff check --fix .`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, "ruff (most fixed by `.venv/bin/ruff check --fix .`):\n" + result.stdout


def test_mypy_is_clean():
    result = _run("mypy")  # files and options: [tool.mypy]
    assert result.returncode == 0, "mypy (`.venv/bin/mypy`):\n" + result.stdout + result.stderr
