"""Options shared by every command that loads the model (or the reranker), so they read the same everywhere."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mlx_jina.spec import package_spec

if TYPE_CHECKING:
    from mlx_jina.embedder import Embedder
    from mlx_jina.rerank import Reranker

MODEL_ENV = "MLX_JINA_MODEL"


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --model/--revision/--quantize/--dtype; the command receives them as keyword arguments."""

    @click.option(
        "--model",
        "model",
        envvar=MODEL_ENV,
        default=lambda: os.environ.get(MODEL_ENV, package_spec().default_model),
        show_default=f"${MODEL_ENV} or {package_spec().default_model}",
        help="Hub id or local checkpoint folder.",
    )
    @click.option("--revision", default=None, help="Hub revision (default: the pin in Package.toml).")
    @click.option("--quantize", type=click.Choice(["8", "4"]), default=None, help="Quantize the base weights.")
    @click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default=None,
                  help="Compute dtype (default: float32 on CPU, bfloat16 on GPU).")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper


def load_from_options(model: str, revision: str | None, quantize: str | None, dtype: str | None) -> Embedder:
    """Load the embedder the shared options describe (ModelLoadError if it cannot be had)."""
    from mlx_jina.embedder import load

    return load(model, revision=revision, quantize=int(quantize) if quantize else None, dtype=dtype)


EMBED_URL_ENV = "MLX_JINA_EMBED_URL"
EMBED_KEY_ENV = "MLX_JINA_EMBED_API_KEY"


def remote_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --embed-url and friends: embed through another engine's /v1/embeddings instead of in-process."""

    @click.option("--embed-url", envvar=EMBED_URL_ENV, default=None,
                  help="Embed through this OpenAI/Jina-compatible server (mlx-jina serve, vLLM, TEI) "
                       f"[${EMBED_URL_ENV}].")
    @click.option("--embed-model", default=None, help="Model name to request (default: the server's first model).")
    @click.option("--embed-style", type=click.Choice(["jina", "openai"]), default=None,
                  help="jina: send the task; openai: prefix the prompt here (vLLM/TEI per-task models). "
                       "Default: jina if the server lists tasks in /v1/models.")
    @click.option("--embed-task", default=None,
                  help="For --embed-style openai: the adapter the served model was merged with (retrieval, ...); "
                       "default: read from its name.")
    @click.option("--concurrency", type=click.IntRange(min=1, max=256), default=4, show_default=True,
                  help="Requests in flight to --embed-url.")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper


def reranker_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --reranker/--reranker-quantize (the command receives reranker, reranker_quantize)."""
    from mlx_jina.kb.knowledge_base import RERANKER_ENV

    default = package_spec().reranker.default_model

    @click.option("--reranker", envvar=RERANKER_ENV, default=default, show_default=f"${RERANKER_ENV} or {default}",
                  help="Qwen3-Reranker hub id or local folder (0.6B, 4B or 8B).")
    @click.option("--reranker-quantize", type=click.Choice(["8", "4"]), default=None,
                  help="Quantize the reranker's weights.")
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper


def remote_from_options(url: str, *, model: str | None, style: str | None, task: str | None, concurrency: int,
                        tokenizer: str | None) -> Any:
    """A RemoteEmbedder for --embed-url; the API key comes from $MLX_JINA_EMBED_API_KEY (never argv)."""
    from mlx_jina.remote import RemoteEmbedder

    return RemoteEmbedder(url, model=model, style=style, task=task, concurrency=concurrency,  # type: ignore[arg-type]
                          tokenizer=tokenizer, api_key=os.environ.get(EMBED_KEY_ENV))


def load_reranker_from_options(reranker: str, reranker_quantize: str | None) -> Reranker:
    from mlx_jina.rerank import load_reranker

    return load_reranker(reranker, quantize=int(reranker_quantize) if reranker_quantize else None)
