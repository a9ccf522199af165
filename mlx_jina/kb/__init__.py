"""Offline knowledge base: folders of notes -> one SQLite file with FTS5 and sqlite-vec binary
vectors; hybrid search. See KnowledgeBase."""

from mlx_jina.errors import ModelMismatchError
from mlx_jina.kb.indexer import IndexReport
from mlx_jina.kb.knowledge_base import DB_ENV, RERANKER_ENV, KnowledgeBase, default_db_path
from mlx_jina.kb.search import Filters, Hit

__all__ = ["DB_ENV", "RERANKER_ENV", "Filters", "Hit", "IndexReport", "KnowledgeBase", "ModelMismatchError",
           "default_db_path"]
