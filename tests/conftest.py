"""Shared fixtures: the tiny checkpoints in weights/tiny (every published layout) and the golden
reference outputs in weights/golden (made by weights/make_golden.py with transformers + PEFT)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import mlx_jina
from mlx_jina.embedder import Embedder

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "weights" / "tiny"
GOLDEN = ROOT / "weights" / "golden"


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    return TINY / "jina-v5-tiny"


@pytest.fixture(scope="session")
def tiny(tiny_path: Path) -> Embedder:
    return mlx_jina.load(tiny_path)


@pytest.fixture(scope="session")
def golden_texts() -> list[str]:
    return json.loads((GOLDEN / "texts.json").read_text("utf-8"))


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "tiny-reference.npz") as data:
        return dict(data)


@pytest.fixture
def tiny_copy(tmp_path: Path, tiny_path: Path) -> Path:
    """A writable copy of the main-layout tiny checkpoint, to break in tests."""
    return Path(shutil.copytree(tiny_path, tmp_path / "jina-v5-tiny"))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
