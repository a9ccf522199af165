"""Ollama's embedding API on `mlx-jina serve`, so apps written for a local Ollama work unchanged.

Routes: POST /api/embed, the legacy POST /api/embeddings, GET /api/tags, POST /api/show,
GET /api/ps, GET /api/version, and GET|HEAD / ("Ollama is running": clients probe the base URL).

Ollama requests carry no task, so the default is `text-matching` (symmetric: an app embeds its
notes and its queries with the same call). A client picks another task with the model name's tag
(`jina-embeddings-v5-text-small:retrieval.query`, each listed by /api/tags), or with a `task` field
in `options` or in the body (Open WebUI's RAG_EMBEDDING_PREFIX_FIELD_NAME can send it). Errors
are Ollama's `{"error": "..."}`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mlx_jina.embedder import Embedder
from mlx_jina.errors import InputError, InputTooLongError
from mlx_jina.postprocess import finalize
from mlx_jina.server.errors import ApiError
from mlx_jina.server.requests import DEFAULT_TASK
from mlx_jina.spec import package_spec

#: The Ollama release whose API these routes follow (clients gate features on GET /api/version).
OLLAMA_API_VERSION = "0.12.0"
#: Ollama's name for the architecture (Qwen3 decoder, see Package.toml's spec).
FAMILY = "qwen3"
LATEST = "latest"  # Ollama's tag for "the default": here the default task

#: (the request, token-id rows, one task per row) -> raw float32 vectors: the app's micro-batcher,
#: which also stops the work if the client goes away.
EmbedRows = Callable[[Request, list[list[int]], list[str]], Awaitable[np.ndarray]]
ReadBody = Callable[[Request], Awaitable[Any]]


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INPUT_INVALID", message)


@dataclass(frozen=True)
class EmbedCall:
    """One /api/embed or /api/embeddings request, validated."""

    model: str  # echoed back, as Ollama does
    texts: list[str]
    task: str
    truncate: bool
    dimensions: int | None


class OllamaModels:
    """The served model under Ollama names: `NAME:TASK` for each task, and `NAME:latest`."""

    def __init__(self, model: Embedder, names: Sequence[str]):
        self.model = model
        self.names = tuple(names)
        self.tags = ((LATEST,) if DEFAULT_TASK in model.tasks else ()) + tuple(model.tasks)
        files = [p for p in Path(model.folder).rglob("*.safetensors") if p.is_file()]
        self.size = sum(p.stat().st_size for p in files)
        mtime = max((p.stat().st_mtime for p in files), default=time.time())
        self.modified_at = datetime.fromtimestamp(mtime, UTC).isoformat()
        self.digest = hashlib.sha256(f"{model.model_id}@{model.revision}".encode()).hexdigest()

    @property
    def listed(self) -> list[str]:
        return [f"{self.names[0]}:{tag}" for tag in self.tags]

    def task_of(self, name: Any) -> tuple[str, str | None]:
        """(the name as given, the task its tag names or None for the default); 404 if not served."""
        if name is None or name == "":
            return self.names[0], None
        if not isinstance(name, str):
            raise _invalid(f"model must be a string, not {name!r}")
        base, tag = name, ""
        head, sep, tail = name.rpartition(":")
        if sep and "/" not in tail:
            base, tag = head, tail
        if base not in self.names or (tag and tag not in self.tags):
            raise ApiError(404, "MODEL_NOT_FOUND",
                           f"model {name!r} not found; this server has: {', '.join(self.listed)}")
        return name, None if tag in ("", LATEST) else tag

    def details(self) -> dict[str, Any]:
        quant = self.model.info.quantization
        return {"parent_model": "", "format": "safetensors", "family": FAMILY, "families": [FAMILY],
                "quantization_level": f"Q{quant}" if quant else self.model.info.dtype.upper()}

    def entry(self, name: str) -> dict[str, Any]:
        return {"name": name, "model": name, "modified_at": self.modified_at, "size": self.size,
                "digest": self.digest, "details": self.details()}

    def show(self, name: str) -> dict[str, Any]:
        """POST /api/show: apps read `model_info["<family>.embedding_length" / ".context_length"]`."""
        task = self.task_of(name)[1] or DEFAULT_TASK
        info = self.model.info
        return {
            "license": package_spec().weights_license_note,
            "modelfile": f"# {name}: served by mlx-jina; task {task}\nFROM {self.model.model_id}\n",
            "parameters": "", "template": "", "details": self.details(),
            "model_info": {
                "general.architecture": FAMILY, "general.basename": self.names[0],
                f"{FAMILY}.embedding_length": info.dimensions, f"{FAMILY}.context_length": info.max_length,
                f"{FAMILY}.pooling_type": "last", "mlx_jina.task": task,
                "mlx_jina.matryoshka_dimensions": list(info.matryoshka_dimensions), "mlx_jina.tasks": list(info.tasks),
            },
            "capabilities": ["embedding"], "modified_at": self.modified_at,
        }


def parse_embed(body: Any, models: OllamaModels, *, legacy: bool, max_inputs: int) -> EmbedCall:
    """/api/embed `{model, input: str | [str], truncate, dimensions, options, keep_alive}`; legacy
    /api/embeddings `{model, prompt, options, keep_alive}`. keep_alive is accepted and ignored:
    the model stays loaded while the server runs."""
    if not isinstance(body, dict):
        raise _invalid(f"the request body must be a JSON object, not {type(body).__name__}")
    name, tag_task = models.task_of(body.get("model"))
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise _invalid(f"options must be an object, not {options!r}")
    task = _one_task(tag_task, options.get("task"), body.get("task"))
    if legacy:
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise _invalid(f"prompt must be a string, not {type(prompt).__name__}")
        texts = [prompt] if prompt else []
    else:
        texts = _inputs(body.get("input"), max_inputs)
    truncate = body.get("truncate", True)
    if not isinstance(truncate, bool):
        raise _invalid(f"truncate must be true or false, not {truncate!r}")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
        raise _invalid(f"dimensions must be an integer, not {dimensions!r}")
    if texts:
        try:
            models.model.check_inputs(texts, task, dimensions=dimensions or None)
        except InputError as exc:
            raise _invalid(str(exc)) from None
    return EmbedCall(name, texts, task, truncate, dimensions or None)


def _one_task(*given: Any) -> str:
    named = {t for t in given if t is not None}
    for t in named:
        if not isinstance(t, str):
            raise _invalid(f"task must be a string, not {t!r}")
    if len(named) > 1:
        raise _invalid(f"the model tag, options.task and task name different tasks: {sorted(named)}")
    return named.pop() if named else DEFAULT_TASK


def _inputs(value: Any, max_inputs: int) -> list[str]:
    if value is None or value == "":
        return []  # Ollama answers an empty input with no embeddings
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise _invalid("invalid input type: input must be a string or a list of strings")
    if len(items) > max_inputs:
        raise _invalid(f"input has {len(items)} items; this server takes at most {max_inputs} per request")
    return items


def ollama_routes(models: OllamaModels, embed_rows: EmbedRows, read_body: ReadBody, *,
                  max_inputs: int) -> list[Route]:
    """The Ollama routes; their errors are answered in Ollama's shape (server.errors.error_response)."""
    model = models.model

    async def embed_call(request: Request, *, legacy: bool) -> tuple[EmbedCall, np.ndarray, int, int]:
        start = time.perf_counter_ns()
        call = parse_embed(await read_body(request), models, legacy=legacy, max_inputs=max_inputs)
        if not call.texts:
            return call, np.zeros((0, model.dimensions[-1]), np.float32), 0, time.perf_counter_ns() - start
        try:
            ids = await run_in_threadpool(model.tokenize, call.texts, [call.task] * len(call.texts),
                                          truncate=call.truncate)
        except InputTooLongError as exc:
            raise _invalid(f"input length exceeds the context length ({exc})") from None
        raw = await embed_rows(request, ids, [call.task] * len(ids))
        vectors = finalize(raw, dimensions=call.dimensions, normalized=True, embedding_type="float")
        return call, vectors, sum(map(len, ids)), time.perf_counter_ns() - start

    async def embed(request: Request) -> Response:
        call, vectors, tokens, elapsed = await embed_call(request, legacy=False)
        return JSONResponse({"model": call.model, "embeddings": vectors.tolist(), "total_duration": elapsed,
                             "load_duration": 0, "prompt_eval_count": tokens})

    async def embeddings(request: Request) -> Response:
        _, vectors, _, _ = await embed_call(request, legacy=True)
        return JSONResponse({"embedding": vectors[0].tolist() if len(vectors) else []})

    async def tags(request: Request) -> Response:
        return JSONResponse({"models": [models.entry(name) for name in models.listed]})

    async def running(request: Request) -> Response:
        return JSONResponse({"models": [models.entry(name) | {"expires_at": "9999-12-31T23:59:59Z",
                                                               "size_vram": 0, "context_length": model.max_length}
                                        for name in models.listed]})

    async def show(request: Request) -> Response:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise _invalid("the request body must be a JSON object with a model name")
        name = body.get("model") or body.get("name")  # older clients send "name"
        if not name:
            raise _invalid("model is required")
        return JSONResponse(models.show(name))

    async def version(request: Request) -> Response:
        return JSONResponse({"version": OLLAMA_API_VERSION})

    async def root(request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    return [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/api/version", version, methods=["GET"]),
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/ps", running, methods=["GET"]),
        Route("/api/show", show, methods=["POST"]),
        Route("/api/embed", embed, methods=["POST"]),
        Route("/api/embeddings", embeddings, methods=["POST"]),
    ]
