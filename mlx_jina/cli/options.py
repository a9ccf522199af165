"""Options shared by every command that loads the model, so they read the same everywhere."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mlx_jina.spec import package_spec

if TYPE_CHECKING:
    from mlx_jina.embedder import Embedder

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
