"""`mlx-jina serve`: keep the model loaded and answer Jina- and OpenAI-style embedding requests
(and knowledge-base searches) over HTTP, for apps in any language. API: see mlx_jina.server."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from mlx_jina.cli import main
from mlx_jina.cli.options import load_from_options, load_reranker_from_options, model_options
from mlx_jina.errors import InputError
from mlx_jina.server.config import DEFAULT_HOST, DEFAULT_PORT, ServerConfig

if TYPE_CHECKING:
    from mlx_jina.kb import KnowledgeBase

TOKEN_ENV = "MLX_JINA_API_TOKEN"
_DEFAULTS = ServerConfig()


def _origins(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    from mlx_jina.server.security import check_origin

    try:
        return tuple(check_origin(v) for v in values)
    except InputError as exc:
        raise click.BadParameter(str(exc)) from exc


def _api_token(ctx: click.Context, token: str | None, token_file: Path | None) -> str | None:
    """The token from --api-token-file, $MLX_JINA_API_TOKEN or --api-token (in that order of
    preference); warns when it was typed on the command line, where `ps` shows it to every user."""
    if token_file is not None:
        if token:
            raise click.UsageError("give --api-token-file or --api-token/$MLX_JINA_API_TOKEN, not both")
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {token_file}: {exc}", param_hint="--api-token-file") from exc
        if not token:
            raise click.BadParameter(f"{token_file} is empty", param_hint="--api-token-file")
    elif token and ctx.get_parameter_source("api_token") == ParameterSource.COMMANDLINE:
        click.secho(f"warning: --api-token on the command line is visible to every user in `ps`; "
                    f"prefer --api-token-file FILE or ${TOKEN_ENV}", err=True, fg="yellow")
    return token or None


def _open_checked(db: Path, model: Any, reranker: Any = None) -> KnowledgeBase:
    """The knowledge base, read once in full: a broken file stops `serve` now, with its one-line
    reason, instead of failing searches later."""
    from mlx_jina.kb import KnowledgeBase

    kb = KnowledgeBase(db, model=model, reranker=reranker)
    try:
        kb.check()
    except BaseException:
        kb.close()
        raise
    return kb


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on. Anything but loopback needs --allow-remote and an API token.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (other machines can connect).")
@click.option("--api-token", envvar=TOKEN_ENV, show_envvar=True, default=None,
              help="Require 'Authorization: Bearer TOKEN' on every request but GET /health. "
                   "Visible in `ps` when typed here: prefer the environment variable or --api-token-file.")
@click.option("--api-token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read the API token from this file (surrounding whitespace stripped).")
@click.option("--cors-origin", "cors_origins", multiple=True, callback=_origins, metavar="ORIGIN",
              help="Let web pages or apps from ORIGIN call the server from a browser or web view "
                   "(e.g. app://obsidian.md); repeatable. Requests from other origins are refused.")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Knowledge base (from `mlx-jina index`) to answer POST /v1/search from.")
@click.option("--max-batch-tokens", type=click.IntRange(min=1), default=_DEFAULTS.max_batch_tokens,
              show_default="8192, as encode()", help="Padded tokens (rows x longest row) of one batching round.")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=_DEFAULTS.batch_wait_ms, show_default=True,
              help="How long a batching round waits for more requests to join it.")
@click.option("--max-inputs", type=click.IntRange(min=1), default=_DEFAULTS.max_inputs, show_default=True,
              help="Most texts in one request.")
@click.option("--max-body-mb", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.max_body_mb,
              show_default=True, help="Largest request body.")
@click.option("--max-pending-mb", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.max_pending_mb,
              show_default=True, help="Request bodies admitted at once (being read, queued or computed); "
                                      "more get 429 with Retry-After.")
@click.option("--max-queued-tokens", type=click.IntRange(min=1), default=_DEFAULTS.max_queued_tokens,
              show_default=True, help="Tokens waiting for the model; more get 429 with Retry-After.")
@click.option("--header-timeout", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.header_timeout_s,
              show_default=True, help="Seconds a connection has to send a request's headers.")
@click.option("--body-timeout", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.body_timeout_s,
              show_default=True, help="Seconds a request has to send its body after the headers.")
@click.option("--keep-alive", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.keep_alive_s,
              show_default=True, help="Seconds an idle keep-alive connection stays open.")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.option("--reranker", default=None,
              help="Also load this Qwen3-Reranker (hub id or folder): POST /v1/rerank, /v1/search \"rerank\": true.")
@click.option("--reranker-quantize", type=click.Choice(["8", "4"]), default=None, help="Quantize the reranker.")
@model_options
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, allow_remote: bool, api_token: str | None,
          api_token_file: Path | None, cors_origins: tuple[str, ...], db: Path | None, max_batch_tokens: int | None,
          batch_wait_ms: float, max_inputs: int, max_body_mb: float, max_pending_mb: float, max_queued_tokens: int,
          header_timeout: float, body_timeout: float, keep_alive: float, access_log: bool, reranker: str | None,
          reranker_quantize: str | None, **model_opts: Any) -> None:
    """Serve embeddings on http://HOST:PORT: POST /v1/embeddings (Jina or OpenAI request),
    GET /v1/models, GET /health, Ollama's /api/embed, /api/tags, /api/show; with --db also
    POST /v1/search and MCP at /mcp; with --reranker also POST /v1/rerank (Jina/Cohere shape)."""
    from mlx_jina.server.security import check_bind, is_loopback

    token = _api_token(ctx, api_token, api_token_file)
    try:
        check_bind(host, allow_remote=allow_remote, api_token=token)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc

    import uvicorn

    from mlx_jina.server.app import create_app
    from mlx_jina.server.protocol import timed_protocol
    from mlx_jina.server.worker import ModelWorker

    worker = ModelWorker(functools.partial(load_from_options, **model_opts))
    try:
        second = worker.call(load_reranker_from_options, reranker, reranker_quantize) if reranker else None
        kb = worker.call(functools.partial(_open_checked, db, worker.model, second)) if db else None
    except BaseException:
        worker.close()
        raise
    config = ServerConfig(loopback_only=is_loopback(host), api_token=token, cors_origins=cors_origins,
                          max_batch_tokens=max_batch_tokens, batch_wait_ms=batch_wait_ms, max_inputs=max_inputs,
                          max_body_mb=max_body_mb, max_pending_mb=max_pending_mb,
                          max_queued_tokens=max_queued_tokens, header_timeout_s=header_timeout,
                          body_timeout_s=body_timeout, keep_alive_s=keep_alive)
    server = uvicorn.Server(uvicorn.Config(
        create_app(worker, config, kb, second), host=host, port=port, access_log=access_log,
        http=timed_protocol(header_timeout, body_timeout), timeout_keep_alive=keep_alive))  # type: ignore[arg-type]
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down for; the shutdown was clean
        pass
    finally:
        if kb is not None:
            worker.call(kb.close)
        worker.close()
    click.echo("mlx-jina serve: stopped", err=True)
