"""`mlx-jina mcp`: the knowledge base as an MCP server on stdio, for Claude Desktop, Cursor, Zed and
other agents (tools: search, get, status; see mlx_jina.agent.mcp_server). stdout carries the
protocol, so everything else goes to stderr."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import click

from mlx_jina.cli import main
from mlx_jina.cli.kb import db_option
from mlx_jina.kb.knowledge_base import RERANKER_ENV


@main.command()
@db_option
@click.option("--model", default=None, show_default="the model the index was built with",
              help="Hub id or local checkpoint folder to embed queries with.")
@click.option("--reranker", envvar=RERANKER_ENV, show_envvar=True, default=None, show_default="none: no reranking",
              help="Qwen3-Reranker (hub id or folder) that `search` may use (rerank=true), e.g. "
                   "Qwen/Qwen3-Reranker-0.6B.")
def mcp(db: Path | None, model: str | None, reranker: str | None) -> None:
    """Serve the knowledge base to agents over MCP on stdin/stdout (tools: search, get, status)."""
    from mlx_jina.kb.knowledge_base import default_db_path

    path = (db or default_db_path()).resolve()
    if not path.exists():
        raise click.ClickException(f"no index at {path}: build one with `mlx-jina index FOLDER` (or pass --db)")

    import anyio

    from mlx_jina.agent.mcp_server import build_server
    from mlx_jina.errors import MlxJinaError
    from mlx_jina.kb import KnowledgeBase
    from mlx_jina.server.worker import ModelWorker

    worker = ModelWorker(functools.partial(KnowledgeBase, path, model=model, reranker=reranker))
    kb = worker.model
    server = build_server(kb, worker.run, reranker=reranker, version=_version())

    async def preload() -> None:
        """Load the models while the client connects, so the first search is not the slow one; if one
        cannot be loaded, the searches that need it say why (and keyword search still works)."""
        with contextlib.suppress(MlxJinaError):
            await worker.run(lambda: kb.embedder if kb.store.binding() else None)
        with contextlib.suppress(MlxJinaError):
            await worker.run(lambda: kb.reranker if reranker else None)

    async def serve() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(preload)
            await server.run_stdio_async()
            tasks.cancel_scope.cancel()

    try:
        anyio.run(serve)
    except KeyboardInterrupt:
        pass
    finally:
        worker.call(kb.close)
        worker.close()


def _version() -> str:
    from importlib.metadata import version

    return version("mlx-jina")
