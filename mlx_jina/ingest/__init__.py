"""Ingestion: walk a notes folder, read each file as text, cut the text into chunks to embed."""

from mlx_jina.errors import UnreadableFile
from mlx_jina.ingest.chunking import Chunk, CountTokens, chunk_document, count_bound
from mlx_jina.ingest.readers import Document, bom_encoding, kind_of, read_bytes, read_document
from mlx_jina.ingest.walk import DEFAULT_MAX_BYTES, FileEntry, Skipped, check_max_bytes, scan

__all__ = [
    "DEFAULT_MAX_BYTES", "Chunk", "CountTokens", "Document", "FileEntry", "Skipped", "UnreadableFile", "bom_encoding",
    "check_max_bytes",
    "chunk_document", "count_bound", "kind_of", "read_bytes", "read_document", "scan",
]
