"""`mlx-jina serve`: keep the model loaded and answer Jina- and OpenAI-style embedding requests
(and knowledge-base searches) over HTTP, for apps in any language. API: see mlx_jina.server."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from mlx_jina.cli import main
from mlx_jina.cli.options import load_from_options, model_options
from mlx_jina.errors import InputError
from mlx_jina.server.config import ServerConfig

DEFAULT_PORT = 8765
TOKEN_ENV = "MLX_JINA_API_TOKEN"
_DEFAULTS = ServerConfig()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --allow-remote and an API token.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (other machines can connect).")
@click.option("--api-token", envvar=TOKEN_ENV, show_envvar=True, default=None,
              help="Require 'Authorization: Bearer TOKEN' on every request but GET /health.")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Knowledge base (from `mlx-jina index`) to answer POST /v1/search from.")
@click.option("--max-batch-tokens", type=click.IntRange(min=1), default=_DEFAULTS.max_batch_tokens,
              show_default="8192, as encode()", help="Token budget (with padding) of one batching round.")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=_DEFAULTS.batch_wait_ms, show_default=True,
              help="How long a batching round waits for more requests to join it.")
@click.option("--max-inputs", type=click.IntRange(min=1), default=_DEFAULTS.max_inputs, show_default=True,
              help="Most texts in one request.")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.max_body_mb,
              show_default=True, help="Largest request body.")
@click.option("--access-log", is_flag=True, help="Log every request.")
@model_options
def serve(host: str, port: int, allow_remote: bool, api_token: str | None, db: Path | None,
          max_batch_tokens: int | None, batch_wait_ms: float, max_inputs: int, max_body_mb: float,
          access_log: bool, **model_opts: Any) -> None:
    """Serve embeddings on http://HOST:PORT: POST /v1/embeddings (Jina or OpenAI request),
    GET /v1/models, GET /health, and POST /v1/search with --db."""
    from mlx_jina.server.security import check_bind, is_loopback

    try:
        check_bind(host, allow_remote=allow_remote, api_token=api_token)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc

    import uvicorn

    from mlx_jina.kb import KnowledgeBase
    from mlx_jina.server.app import create_app
    from mlx_jina.server.worker import ModelWorker

    worker = ModelWorker(functools.partial(load_from_options, **model_opts))
    try:
        kb = worker.call(functools.partial(KnowledgeBase, db, model=worker.model)) if db else None
    except BaseException:
        worker.close()
        raise
    config = ServerConfig(loopback_only=is_loopback(host), api_token=api_token or None,
                          max_batch_tokens=max_batch_tokens, batch_wait_ms=batch_wait_ms, max_inputs=max_inputs,
                          max_body_mb=max_body_mb)
    try:
        uvicorn.run(create_app(worker, config, kb), host=host, port=port, access_log=access_log)
    finally:
        if kb is not None:
            worker.call(kb.close)
        worker.close()
