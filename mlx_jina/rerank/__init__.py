"""Qwen3-Reranker on the package's own MLX Qwen3: `load_reranker`, then `score` or `rerank`."""

from mlx_jina.rerank.reranker import Reranker, RerankResult, load_reranker

__all__ = ["Reranker", "RerankResult", "load_reranker"]
