"""`mlx-jina embed`: texts in (arguments or one per line on stdin), JSON lines out."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mlx_jina.cli import main
from mlx_jina.cli.options import load_from_options, model_options
from mlx_jina.postprocess import EMBEDDING_TYPES
from mlx_jina.spec import package_spec


def _stdin_lines(data: bytes) -> list[str]:
    """One text per line, decoded strictly: a line that is not UTF-8 is an error naming it."""
    from mlx_jina.errors import InputError

    lines = data.splitlines()
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"text {i} (stdin line {i + 1}) is not valid UTF-8 at byte {e.start}") from None
    return [line.decode("utf-8") for line in lines]


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--task", type=click.Choice(list(package_spec().tasks)), default="text-matching", show_default=True,
              help="Jina API task (picks the adapter and the Query:/Document: prompt).")
@click.option("--dimensions", type=int, default=None, help="Matryoshka size: slice, then normalise.")
@click.option("--embedding-type", type=click.Choice(EMBEDDING_TYPES), default="float", show_default=True)
@click.option("--no-normalize", is_flag=True, help="Return raw pooled vectors (no L2 normalisation).")
@click.option("--truncate", is_flag=True, help="Cut over-length texts instead of failing.")
@click.option("--batch-tokens", type=int, default=None, help="Token budget per forward pass (with padding).")
@model_options
def embed(texts: tuple[str, ...], task: str, dimensions: int | None, embedding_type: str, no_normalize: bool,
          truncate: bool, batch_tokens: int | None, **model_opts: Any) -> None:
    """Embed TEXTS (or stdin lines); print one JSON object per text: {"index", "embedding"}."""
    if not texts:
        if sys.stdin.isatty():
            raise click.UsageError("give texts as arguments or one per line on stdin")
        texts = tuple(_stdin_lines(sys.stdin.buffer.read()))
    model = load_from_options(**model_opts)
    extra: dict[str, Any] = {"batch_tokens": batch_tokens} if batch_tokens else {}
    vectors = model.encode(list(texts), task=task, dimensions=dimensions, embedding_type=embedding_type,
                           normalized=not no_normalize, truncate=truncate, **extra)
    for i, vector in enumerate(vectors):
        value = vector if isinstance(vector, str) else vector.tolist()
        click.echo(json.dumps({"index": i, "embedding": value}))
