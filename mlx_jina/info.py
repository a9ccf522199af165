"""`ModelInfo`: what an embedder says about its model, the one contract the knowledge base,
the server and the benchmarks read (local `Embedder` and `RemoteEmbedder` alike); `RerankerInfo`,
the same for a reranker. Free of mlx."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded, for callers that record or report it (knowledge base, server, bench)."""

    model_id: str  # the name or folder passed to load()
    revision: str | None  # hub revision, None for a local folder
    folder: str | None  # the local checkpoint folder (None: a remote endpoint)
    layout: str  # hf-adapters | mlx-adapters | hf-merged | mlx-merged | random | remote:<style>
    weights_file: str | None  # None: a remote endpoint
    adapters: tuple[str, ...]  # resident task adapters, in bank order (empty for a merged checkpoint)
    merged_adapter: str | None  # the adapter a per-task checkpoint has merged in
    dimensions: int  # full embedding size
    matryoshka_dimensions: tuple[int, ...]
    max_length: int  # tokens, prompt prefix included
    quantization: int | None  # bits of the base weights, None for float
    dtype: str  # float32 | float16 | bfloat16 | remote
    tasks: tuple[str, ...]  # the Jina API task names this checkpoint serves
    device: str  # the MLX device, or a remote endpoint's URL


@dataclass(frozen=True)
class RerankerInfo:
    """What `load_reranker` loaded."""

    model_id: str  # the name or folder passed to load_reranker()
    revision: str | None  # hub revision, None for a local folder
    folder: str
    weights_file: str
    max_length: int  # tokens per prompt (query + document + the card's prefix and suffix)
    max_documents: int  # per request
    quantization: int | None  # bits of the body, None for float
    dtype: str  # float32 | float16 | bfloat16
    device: str  # the MLX device
