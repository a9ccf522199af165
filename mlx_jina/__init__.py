"""mlx-jina: jina-embeddings-v5-text-small on Apple MLX, plus an offline SQLite knowledge base.

`import mlx_jina` stays light: the model code (and mlx) loads on first use of `load` or `load_reranker`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlx_jina import blas
from mlx_jina.errors import (
    ClientGone,
    DatabaseError,
    InputError,
    InputTooLongError,
    Interrupted,
    MlxJinaError,
    ModelLoadError,
    ModelMismatchError,
    ModelNotFound,
    NoteNotFound,
    RemoteEmbedderError,
    RequestTooLarge,
    SchemaError,
    ServerBusy,
    ServerStartError,
    SQLiteUnavailableError,
    UnreadableFile,
    WouldEmptyIndexError,
)

blas.preload()

__version__ = "0.1.0"
__all__ = ["load", "Embedder", "load_reranker", "Reranker", "KnowledgeBase", "RemoteEmbedder", "MlxJinaError",
           "InputError", "InputTooLongError", "ModelLoadError", "ModelMismatchError", "ModelNotFound", "NoteNotFound",
           "RemoteEmbedderError", "SchemaError", "ServerStartError", "SQLiteUnavailableError", "UnreadableFile",
           "ServerBusy", "RequestTooLarge", "ClientGone", "DatabaseError", "WouldEmptyIndexError",
           "Interrupted"]

if TYPE_CHECKING:
    from mlx_jina.embedder import Embedder, load
    from mlx_jina.kb import KnowledgeBase
    from mlx_jina.remote import RemoteEmbedder
    from mlx_jina.rerank import Reranker, load_reranker

_LAZY = {"load": "mlx_jina.embedder", "Embedder": "mlx_jina.embedder", "KnowledgeBase": "mlx_jina.kb",
         "load_reranker": "mlx_jina.rerank", "Reranker": "mlx_jina.rerank", "RemoteEmbedder": "mlx_jina.remote"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlx_jina' has no attribute {name!r}")
