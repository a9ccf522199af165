"""The Starlette app: routes, limits, error mapping. Model work goes through the micro-batcher
(embeddings) or straight to the model thread (knowledge-base search). The guards of
mlx_jina.server.security wrap every route."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mlx_jina import __version__
from mlx_jina.embedder import DEFAULT_BATCH_TOKENS, Embedder
from mlx_jina.errors import (
    ClientGone,
    DatabaseError,
    InputError,
    InputTooLongError,
    ModelMismatchError,
    ModelNotFound,
    RequestTooLarge,
    ServerBusy,
)
from mlx_jina.kb import KnowledgeBase
from mlx_jina.server.batcher import MicroBatcher
from mlx_jina.server.config import ServerConfig
from mlx_jina.server.disconnect import unless_disconnected
from mlx_jina.server.errors import ApiError, error_response
from mlx_jina.server.ollama import OllamaModels, ollama_routes
from mlx_jina.server.requests import parse_embeddings, parse_search
from mlx_jina.server.rerank_api import parse_rerank, rerank_body
from mlx_jina.server.responses import embeddings_body, models_body, search_body
from mlx_jina.server.security import RETRY_AFTER_S, AccessGuard, SiteGuard
from mlx_jina.server.worker import ModelWorker, release_memory
from mlx_jina.spec import package_spec

if TYPE_CHECKING:
    from mlx_jina.rerank import Reranker

MB = 1024 * 1024
#: What browsers may send and read cross-site when an origin is allowed (--cors-origin).
CORS_METHODS = ("GET", "POST", "HEAD", "DELETE", "OPTIONS")
CORS_HEADERS = ("Authorization", "Content-Type", "Mcp-Session-Id", "Mcp-Protocol-Version", "Last-Event-ID")
CORS_EXPOSE = ("Mcp-Session-Id", "Retry-After")


def served_names(model: Embedder) -> tuple[str, ...]:
    """The served model's name first (the checkpoint's folder or repo name), then the aliases a
    request's `model` may use: the full id, and the Jina API's name of the model family."""
    info = package_spec()
    names = [Path(model.model_id).name, model.model_id]
    if model.dimensions[-1] == info.matryoshka_dimensions[-1]:  # the real width; the bundled tiny one is 128
        names.append(info.default_model.split("/")[-1])
    return tuple(dict.fromkeys(names))


async def read_json(request: Request, limit: int) -> Any:
    """The decoded JSON body (UTF-8, as RFC 8259 requires); 413 past `limit` bytes, checked while
    reading. The AccessGuard already refused bodies that declare more."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "REQUEST_TOO_LARGE", f"request body is over the limit of {limit} bytes")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, "INPUT_INVALID_JSON", f"request body is not UTF-8 (JSON must be): {exc}") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested arrays
        raise ApiError(400, "INPUT_INVALID_JSON", f"request body is not valid JSON: {exc}") from None


def create_app(worker: ModelWorker[Embedder], config: ServerConfig = ServerConfig(),
               kb: KnowledgeBase | None = None, reranker: Reranker | None = None) -> Starlette:
    """The ASGI app. kb: a knowledge base opened on the worker's thread, for POST /v1/search.
    reranker: a Qwen3-Reranker loaded on the worker's thread, for POST /v1/rerank and
    /v1/search's "rerank": true."""
    model = worker.model
    names = served_names(model)
    created = int(time.time())
    max_body = int(config.max_body_mb * MB)
    batch_tokens = config.max_batch_tokens or DEFAULT_BATCH_TOKENS
    embed_ids = functools.partial(model.embed_ids, batch_tokens=batch_tokens)

    async def after_large_work(padded_tokens: int) -> None:
        if padded_tokens >= batch_tokens:  # at least one full round: return its cached buffers
            await worker.run(release_memory)

    batcher = MicroBatcher(lambda ids, tasks: worker.run(embed_ids, ids, tasks),
                           max_batch_tokens=batch_tokens, max_wait_s=config.batch_wait_ms / 1000,
                           max_queued_tokens=config.max_queued_tokens, on_idle=after_large_work)

    async def embeddings(request: Request) -> Response:
        body = await read_json(request, max_body)
        with client_errors(model.max_length):
            job = parse_embeddings(body, model, names=names, max_inputs=config.max_inputs)
            ids = await run_in_threadpool(model.tokenize, job.texts, job.tasks, truncate=job.truncate)
        vectors = batcher.submit(ids, job.tasks)
        prompt_tokens = sum(map(len, ids))
        del body, ids  # held only as the batcher's int32 rows (and within --max-pending-mb) while queued
        job = replace(job, texts=[])
        raw = await unless_disconnected(request, vectors)
        return JSONResponse(embeddings_body(job, raw, prompt_tokens=prompt_tokens, model_name=names[0]))

    async def search(request: Request) -> Response:
        assert kb is not None  # the route exists only with a knowledge base
        body = await read_json(request, max_body)
        with client_errors(model.max_length):
            job = parse_search(body)
            if job.rerank and reranker is None:
                raise InputError("this server has no reranker: start it with `mlx-jina serve --reranker MODEL`")
            hits = await worker.run(functools.partial(
                kb.search, job.query, k=job.k, mode=job.mode, path=job.path, kinds=job.kinds, since=job.since,
                per_doc=job.per_doc, rerank=job.rerank, candidates=job.candidates, instruction=job.instruction))
        return JSONResponse(search_body(job.query, hits))

    rerank_names = tuple(dict.fromkeys([Path(reranker.model_id).name, reranker.model_id])) if reranker else ()

    def score_round(rows: list[Any], groups: list[str]) -> Any:
        assert reranker is not None
        return reranker.score_ids(rows, groups, batch_tokens=batch_tokens)[:, None]  # the batcher's [rows, 1]

    rerank_batcher = None if reranker is None else MicroBatcher(
        lambda rows, groups: worker.run(score_round, rows, groups), max_batch_tokens=batch_tokens,
        max_wait_s=config.batch_wait_ms / 1000,
        max_queued_tokens=config.max_queued_tokens, on_idle=after_large_work)

    async def rerank(request: Request) -> Response:
        assert reranker is not None and rerank_batcher is not None  # the route exists only with a reranker
        body = await read_json(request, max_body)
        with client_errors(reranker.max_length):
            job = parse_rerank(body, reranker, names=rerank_names,
                               max_documents=min(config.max_inputs, reranker.spec.max_documents))
            prompts = await run_in_threadpool(reranker.prompts.build, job.query, job.documents,
                                              instruction=job.instruction, truncate=job.truncate)
        del body
        group = str(id(job))  # rows of one request share a prompt prefix: one cache per request
        scores = (await unless_disconnected(request, rerank_batcher.embed([p.ids for p in prompts],
                                                                          [group] * len(prompts))))[:, 0]
        return JSONResponse(rerank_body(job, scores, [p.truncated for p in prompts], model_name=rerank_names[0],
                                        total_tokens=sum(len(p.ids) for p in prompts)))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": names[0], "search": kb is not None,
                             "rerank": rerank_names[0] if rerank_names else None,
                             "batching": asdict(batcher.stats), "client_disconnects": request.app.state.disconnects})

    async def models(request: Request) -> Response:
        return JSONResponse(models_body(model.info, names, created))

    middleware = [Middleware(SiteGuard, loopback_only=config.loopback_only, cors_origins=config.cors_origins)]
    if config.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=CORS_METHODS,
                                     allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSE,
                                     allow_private_network=True))
    middleware.append(Middleware(AccessGuard, api_token=config.api_token, max_body_bytes=max_body,
                                 max_pending_bytes=int(config.max_pending_mb * MB)))
    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        *ollama_routes(OllamaModels(model, names),
                              lambda request, ids, tasks: unless_disconnected(request, batcher.embed(ids, tasks)),
                              functools.partial(read_json, limit=max_body), max_inputs=config.max_inputs),
    ]
    mcp_session: Callable[[], Any] = contextlib.nullcontext
    if reranker is not None:
        routes.append(Route("/v1/rerank", rerank, methods=["POST"]))
    if kb is not None:
        routes.append(Route("/v1/search", search, methods=["POST"]))
        from mlx_jina.agent.mcp_server import build_server, http_routes  # the mcp SDK: only with a KB

        mcp_routes, mcp_session = http_routes(build_server(kb, worker.run, version=__version__),
                                              max_body_bytes=max_body)
        routes += mcp_routes

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(b.run()) for b in (batcher, rerank_batcher) if b is not None]
        try:
            async with mcp_session():
                yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, ServerBusy: _overloaded,
                            RequestTooLarge: _too_many_tokens, ClientDisconnect: _client_gone, ClientGone: _client_gone,
                            Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.disconnects = 0
    return app


@contextlib.contextmanager
def client_errors(max_length: int) -> Iterator[None]:
    """Errors about the request -> 4xx ApiErrors, with the Jina API's codes where it has one."""
    try:
        yield
    except InputTooLongError as exc:
        raise ApiError(400, "INPUT_TOKEN_LIMIT_EXCEEDED",
                       f"Input text exceeds the model's maximum of {max_length} tokens. Use 'truncate: true' "
                       f"to automatically truncate, or split into smaller chunks. ({exc})") from None
    except ModelNotFound as exc:
        raise ApiError(400, "INPUT_MODEL_NOT_FOUND", str(exc)) from None
    except InputError as exc:
        raise ApiError(400, "INPUT_INVALID", str(exc)) from None
    except ModelMismatchError as exc:
        raise ApiError(409, "MODEL_MISMATCH", str(exc)) from None
    except DatabaseError as exc:  # the server's own file, not the client's mistake: 503 with the reason
        raise ApiError(503, "DATABASE_ERROR", str(exc)) from None


_HTTP_CODES = {404: "RESOURCE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _error(request: Request, status: int, code: str, message: str,
           headers: Mapping[str, str] | None = None) -> Response:
    return error_response(status, code, message, headers, path=request.url.path)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(request, exc.status, exc.code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = f"{exc.detail}: {request.method} {request.url.path}"
    return _error(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "HTTP_ERROR"), detail, exc.headers)


async def _overloaded(request: Request, exc: Exception) -> Response:
    return _error(request, 429, "SERVER_BUSY", f"the server is busy ({exc}); retry in {RETRY_AFTER_S} s",
                  {"Retry-After": str(RETRY_AFTER_S)})


async def _too_many_tokens(request: Request, exc: Exception) -> Response:
    return _error(request, 413, "REQUEST_TOO_LARGE", str(exc))


async def _client_gone(request: Request, exc: Exception) -> Response:
    """Nobody reads this answer; it only keeps a vanished client out of the error log."""
    request.app.state.disconnects += 1
    return Response(status_code=400)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(request, 500, "INTERNAL_ERROR", f"internal error: {type(exc).__name__}: {exc}")
