#!/usr/bin/env bash
# The main job (README): install mlx-jina into .venv, index the bundled notes, search them.
# Uses the real jina-embeddings-v5-text-small when it can be downloaded or is cached; otherwise
# says so and falls back to the bundled tiny checkpoint (not semantically meaningful).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
export MLX_JINA_DB="${MLX_JINA_DB:-$PWD/examples/notes.db}"
run() { echo "\$ mlx-jina $*" >&2; .venv/bin/mlx-jina "$@"; }
run index examples/notes
run search "fix for the login bug" -k 3
run search "what should I check on my bike every month" -k 3
run search "登录错误" -k 3      # a Chinese keyword inside a mostly-Chinese note (work/db-migration-retro.zh.md)
run status
