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


@main.command()
@db_option
@click.option("--model", default=None, show_default="the model the index was built with",
              help="Hub id or local checkpoint folder to embed queries with.")
@click.option("--reranker", default=None, help="Reranker (hub id or folder) that `search` may use (rerank=true).")
def mcp(db: Path | None, model: str | None, reranker: str | None) -> None:
    """Serve the knowledge base to agents over MCP on stdin/stdout (tools: search, get, status)."""
    if reranker is not None:
        raise click.UsageError("--reranker is not available in this version of mlx-jina")
    from mlx_jina.kb.knowledge_base import default_db_path

    path = (db or default_db_path()).resolve()
    if not path.exists():
        raise click.ClickException(f"no index at {path}: build one with `mlx-jina index FOLDER` (or pass --db)")

    import anyio

    from mlx_jina.agent.mcp_server import build_server
    from mlx_jina.errors import MlxJinaError
    from mlx_jina.kb import KnowledgeBase
    from mlx_jina.server.worker import ModelWorker

    worker = ModelWorker(functools.partial(KnowledgeBase, path, model=model))
    kb = worker.model
    server = build_server(kb, worker.run, version=_version())

    async def preload() -> None:
        """Load the embedding model while the client connects, so the first search is not the slow one;
        if it cannot be loaded, searches say why (and keyword search still works)."""
        with contextlib.suppress(MlxJinaError):
            await worker.run(lambda: kb.embedder if kb.store.binding() else None)

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
