"""MCP tools over a knowledge base: `search`, `get` and `status`, described for a model to read.

Built on the official `mcp` SDK's MCPServer. Every knowledge-base call runs through `run`, the
model thread's runner (MLX arrays and the SQLite connection belong to that one thread), so the
same server object serves stdio (`mlx-jina mcp`) and streamable HTTP (/mcp on `mlx-jina serve`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from mlx_jina.errors import MlxJinaError
from mlx_jina.kb import KnowledgeBase
from mlx_jina.kb.notes import MAX_LINES, indexed_folders, read_note

R = TypeVar("R")
#: Runs a call on the model thread: `await run(functools.partial(fn, ...))`.
RunOnModel = Callable[[Callable[[], R]], Awaitable[R]]

MAX_K = 50
RERANK_HELP = ("Reorder the best candidates with the reranker model, which reads the query with each one: "
               "slower, usually more precise. Only on servers whose `status` names a reranker.")
INSTRUCTIONS = """\
Offline search over the user's own notes and files on this computer (markdown, text, code, PDF,
HTML), indexed by mlx-jina. Use `search` to find relevant passages, then `get` with a hit's path
(and a from_line a little before its lines) to read more of that note. `status` says which
folders are indexed and when they were last updated. Everything stays on this machine."""


class SearchHit(BaseModel):
    path: str = Field(description="Absolute path of the file; pass it to `get` to read the note.")
    rel: str = Field(description="Path relative to the indexed folder it is in.")
    heading: str = Field(description="Heading path of the matching section ('' when the file has none).")
    lines: str = Field(description="The matching section's line range, 'first-last' (1-based, inclusive).")
    score: float = Field(description="Recall relevance, higher is better; only comparable within one search.")
    rerank_score: float | None = Field(None, description="With rerank=true: the reranker's probability (0..1) "
                                                         "that the section answers the query; hits are in its order.")
    snippet: str = Field(description="The matching part of the section (or its start).")


class SearchResults(BaseModel):
    query: str
    mode: str
    hits: list[SearchHit] = Field(description="Best first; empty when nothing matched.")


class Note(BaseModel):
    path: str = Field(description="Absolute path of the file.")
    rel: str = Field(description="Path relative to its indexed folder.")
    kind: str = Field(description="markdown, text, code, html or pdf (html/pdf: the extracted text).")
    from_line: int = Field(description="First line returned (1-based).")
    to_line: int = Field(description="Last line returned; to read on, call `get` again with from_line=to_line+1.")
    total_lines: int
    text: str = Field(description="The lines, joined with newlines.")
    changed_since_indexed: bool = Field(description="The file changed after it was indexed: search results "
                                                    "(line numbers, snippets) may be out of date for it.")


class Status(BaseModel):
    files: int = Field(description="Files in the index.")
    chunks: int = Field(description="Searchable sections.")
    folders: list[dict[str, Any]] = Field(description="Each indexed folder and its number of files.")
    last_indexed: str | None = Field(description="When the index was last updated (local time, ISO 8601).")
    model: str | None = Field(description="The embedding model the index was built with.")
    dimensions: int | None
    reranker: str | None = Field(description="The reranker `search` can use (rerank=true), if any.")
    db: str = Field(description="The index file.")


def build_server(kb: KnowledgeBase, run: RunOnModel, *, reranker: str | None = None, name: str = "mlx-jina",
                 version: str = "") -> MCPServer:
    """An MCPServer whose tools read `kb` (opened on the thread `run` runs calls on). reranker: the
    name of the reranker `kb` was given, which `search(rerank=true)` then uses; None: no reranking."""
    server = MCPServer(name, version=version, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False, idempotent_hint=True)

    async def on_model(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        try:
            return await run(functools.partial(fn, *args, **kwargs))
        except MlxJinaError as exc:  # the caller's mistake or the index's state: said, not crashed
            raise ToolError(str(exc)) from None

    async def search(
        query: Annotated[str, Field(description="What to look for: a question, a topic or exact words, any language.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many hits to return.")] = 8,
        mode: Annotated[Literal["hybrid", "vector", "keyword"] | None, Field(
            description="hybrid (default) mixes meaning and exact words; keyword: exact names, identifiers, "
                        "error messages; vector: meaning only, for paraphrased questions.")] = None,
        path: Annotated[str | None, Field(description="Only files whose path matches this glob, relative to the "
                                                      "indexed folder (e.g. 'work/**', '*.py') or absolute.")] = None,
        kinds: Annotated[list[str] | None, Field(description="Only these kinds (markdown, text, code, html, pdf) or "
                                                             "file extensions (md, py, org).")] = None,
        since: Annotated[str | None, Field(description="Only files modified on or after this ISO date, "
                                                       "e.g. '2026-01-31'.")] = None,
        rerank: Annotated[bool, Field(description=RERANK_HELP)] = False,
    ) -> SearchResults:
        """Search the user's indexed notes and files on this computer (offline). Returns the best matching
        sections, each with its file path, heading, line range, score and a snippet. Read more of a hit with
        `get(path, from_line=<first line of its lines>)`."""
        if rerank and reranker is None:
            raise ToolError("this server has no reranker (start `mlx-jina mcp` with --reranker); search without rerank")
        if mode is None:  # an index built by the offline test checkpoint: its vectors mean nothing
            mode = "keyword" if await on_model(lambda: kb.built_with_test_checkpoint) else "hybrid"
        hits = await on_model(kb.search, query, k=k, mode=mode, path=path, kinds=kinds or (), since=since,
                              rerank=rerank)
        return SearchResults(query=query, mode=mode, hits=[
            SearchHit(path=h.path, rel=h.rel, heading=h.heading, lines=f"{h.start_line}-{h.end_line}",
                      score=round(h.score, 6), snippet=h.snippet,
                      rerank_score=None if h.rerank_score is None else round(h.rerank_score, 6)) for h in hits])

    async def get(
        path: Annotated[str, Field(description="The note's path as `search` returned it (absolute), or relative "
                                               "to its indexed folder, e.g. 'work/plan.md'.")],
        from_line: Annotated[int, Field(ge=1, description="First line to return (1-based).")] = 1,
        max_lines: Annotated[int, Field(ge=1, le=MAX_LINES, description="Most lines to return.")] = 200,
    ) -> Note:
        """Read an indexed note (or part of it) by path. Only files in the index can be read; for anything
        else, search first. Long notes come in parts: continue with from_line=to_line+1."""
        note = await on_model(lambda: read_note(kb.store.conn, path, from_line=from_line, max_lines=max_lines))
        return Note(**note.as_dict())

    async def status() -> Status:
        """What is indexed: folders, number of files and sections, last update time, and the model used."""
        stats, folders = await on_model(lambda: (kb.status(), indexed_folders(kb.store.conn)))
        when = stats["last_index_at"]
        return Status(files=stats["files"], chunks=stats["chunks"], folders=folders,
                      last_indexed=datetime.fromtimestamp(when).isoformat(timespec="seconds") if when else None,
                      model=stats["model"], dimensions=stats["dimensions"], reranker=reranker, db=stats["db"])

    for tool, title in ((search, "Search notes"), (get, "Read a note"), (status, "Index status")):
        server.add_tool(tool, title=title, annotations=read_only)
    return server


def http_routes(server: MCPServer, *, max_body_bytes: int) -> tuple[list[BaseRoute], Callable[[], Any]]:
    """The streamable-HTTP endpoint `/mcp`, to add to an app, and the context manager its lifespan must
    hold open. Stateless with JSON responses: each POST is answered on its own, so no per-client
    session state piles up. Host, Origin and token checks are the host app's middleware (one policy for
    every route), so the SDK's own DNS-rebinding check is off rather than configured twice."""
    app = server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, max_request_body_size=max_body_bytes,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    return list(app.routes), server.session_manager.run
