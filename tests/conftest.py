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


def write_notes(root: Path, files: dict[str, str]) -> Path:
    """A notes folder: relative path -> text (folders made as needed)."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def indexed_db(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, notes: Path, **index_args) -> Path:
    """A fresh index.db with `notes` indexed by `embedder` (the servers' and agents' test fixture)."""
    db = tmp_path_factory.mktemp("db") / "index.db"
    with mlx_jina.KnowledgeBase(db, model=embedder) as kb:
        kb.index(notes, **index_args)
    return db


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---- Qwen3-Reranker: tiny random checkpoints rebuilt from weights/make_tiny_reranker.py ----------
@pytest.fixture(scope="session")
def golden_rerank() -> dict:
    """Scores from the model card's transformers code (weights/make_golden_reranker.py)."""
    return json.loads((GOLDEN / "tiny-reranker.json").read_text("utf-8"))


@pytest.fixture(scope="session")
def tiny_reranker_paths(tmp_path_factory: pytest.TempPathFactory, golden_rerank: dict) -> dict[str, Path]:
    """name -> folder of the tied and untied tiny Qwen3ForCausalLM checkpoints (the real Qwen3
    tokenizer, so yes/no have their real ids), byte-identical to the ones the golden scores used."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_tiny_reranker", ROOT / "weights" / "make_tiny_reranker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folders = module.build(tmp_path_factory.mktemp("rerankers"))
    for name, folder in folders.items():
        assert module.weights_digest(folder) == golden_rerank["weights_sha256"][name], \
            f"{name}: rebuilt weights differ from the golden run's; rerun weights/make_golden_reranker.py"
    return folders


@pytest.fixture(scope="session")
def tiny_reranker_path(tiny_reranker_paths: dict[str, Path]) -> Path:
    return tiny_reranker_paths["qwen3-reranker-tiny"]


@pytest.fixture(scope="session")
def tiny_reranker(tiny_reranker_path: Path):
    return mlx_jina.load_reranker(tiny_reranker_path)
