"""Response bodies. One embeddings shape serves both APIs: OpenAI's fields are a subset of Jina's."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlx_jina.postprocess import finalize
from mlx_jina.server.requests import EmbedJob

if TYPE_CHECKING:
    from mlx_jina.info import ModelInfo
    from mlx_jina.kb import Hit


def _json(value: Any) -> Any:
    return value if isinstance(value, str) else value.tolist()


def embeddings_body(job: EmbedJob, raw: np.ndarray, *, prompt_tokens: int, model_name: str) -> dict[str, Any]:
    """`{"object": "list", "model", "data": [{"object": "embedding", "index", "embedding"}], "usage"}`.

    `embedding` is a list of numbers (float, binary as int8, ubinary as uint8), a base64 string of
    little-endian float32, or, when embedding_type was a list, an object keyed by type."""
    encoded = {t: finalize(raw, dimensions=job.dimensions, normalized=job.normalized, embedding_type=t)
               for t in job.embedding_types}
    only = job.embedding_types[0]

    def embedding(i: int) -> Any:
        if job.keyed:
            return {t: _json(values[i]) for t, values in encoded.items()}
        return _json(encoded[only][i])

    return {
        "object": "list",
        "model": model_name,
        "data": [{"object": "embedding", "index": i, "embedding": embedding(i)} for i in range(len(raw))],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def models_body(info: ModelInfo, names: tuple[str, ...], created: int) -> dict[str, Any]:
    """OpenAI's model list, with the served model's limits so clients need not hard-code them, and
    what a remote knowledge-base writer records as the model (`model_id`, `revision`)."""
    entry = {
        "id": names[0], "object": "model", "created": created, "owned_by": "mlx-jina", "aliases": list(names[1:]),
        "model_id": info.model_id, "revision": info.revision, "dimensions": info.dimensions,
        "matryoshka_dimensions": list(info.matryoshka_dimensions), "max_length": info.max_length,
        "tasks": list(info.tasks), "quantization": info.quantization, "dtype": info.dtype,
    }
    if Path(info.model_id).expanduser().is_dir():  # a folder: say where it is, not where the server ran
        entry["model_id"] = str(Path(info.model_id).expanduser().resolve())
    return {"object": "list", "data": [entry]}


def search_body(query: str, hits: list[Hit]) -> dict[str, Any]:
    """`{"object": "list", "query", "data": [Hit fields: path, rel, kind, heading, start_line, end_line,
    snippet, score, vector_score, keyword_score, chunk_id, highlights]}`, best first."""
    return {"object": "list", "query": query, "data": [hit.as_dict() for hit in hits]}
