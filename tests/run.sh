#!/usr/bin/env bash
# The test command (README): install mlx-jina with its test extra into .venv, then run pytest.
# pytest's own exit code is returned, so "no tests collected" (5) fails too.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
exec .venv/bin/python -m pytest -q "$@"
