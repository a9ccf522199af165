"""Both request styles of POST /v1/embeddings -> one validated `EmbedJob`.

Jina API (EmbeddingsV5Request): model, input (string | {"text"} | list of either), task
(default "text-matching"), dimensions (null = full), normalized (default true), embedding_type
(one or a list of float | base64 | binary | ubinary; default float), truncate (default false).
OpenAI API: model, input (string | list of strings), encoding_format (float | base64),
dimensions; extra fields such as `user` are ignored. A request may mix the two, except that
embedding_type and encoding_format together are refused. Values are checked by the same
`Embedder.check_inputs` as `encode`, so the server and the library accept the same things.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlx_jina.embedder import Embedder
from mlx_jina.errors import InputError, ModelNotFound
from mlx_jina.postprocess import check_embedding_type
from mlx_jina.spec import package_spec

DEFAULT_TASK = "text-matching"  # the Jina API's default for v5
OPENAI_ENCODINGS = ("float", "base64")


@dataclass(frozen=True)
class EmbedJob:
    texts: list[str]
    tasks: list[str]  # one per text
    dimensions: int | None
    normalized: bool
    embedding_types: tuple[str, ...]
    keyed: bool  # embedding_type was a list: each `embedding` is an object keyed by type
    truncate: bool


def parse_embeddings(body: Any, model: Embedder, *, names: Sequence[str], max_inputs: int) -> EmbedJob:
    """Validate a decoded JSON body; raise InputError (ModelNotFound for `model`) naming the problem."""
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, not {type(body).__name__}")
    check_model(body.get("model"), names)
    texts = _texts(body.get("input"), max_inputs)
    types, keyed = _embedding_types(body)
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)):
        raise InputError(f"dimensions must be an integer or null, not {dimensions!r}")
    task = optional_field(body, "task", str, DEFAULT_TASK)
    tasks = model.check_inputs(texts, task, dimensions=dimensions)
    return EmbedJob(texts, tasks, dimensions, optional_field(body, "normalized", bool, True), types, keyed,
                    optional_field(body, "truncate", bool, False))


def check_model(name: Any, names: Sequence[str]) -> None:
    """`model` may be left out; if given it must be a name of the served model: vectors of an
    other model would silently live in a different space."""
    if name is None:
        return
    if not isinstance(name, str) or name not in names:
        real = package_spec().default_model
        if name in (real, real.split("/")[-1]):
            raise ModelNotFound(f"Model {name!r} is not served here: this server runs {names[0]!r}, a small "
                                f"checkpoint that is not {real} (the bundled tiny one has random weights, for "
                                f"tests and demos). Start `mlx-jina serve --model {real}` for the real model, or "
                                f"name one of: {', '.join(names)}")
        raise ModelNotFound(f"Model {name!r} not found. Available models: {', '.join(names)}")


def optional_field(body: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """body[key] if it has the right type, `default` when absent or null; else an InputError naming it."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        expected = "true or false" if kind is bool else f"a {kind.__name__} or null"
        raise InputError(f"{key} must be {expected}, not {value!r}")
    return value


def _texts(value: Any, max_inputs: int) -> list[str]:
    if value is None:
        raise InputError("input is required: a string, {\"text\": ...}, or a list of them")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise InputError("input is an empty list")
    if len(items) > max_inputs:
        raise InputError(f"input has {len(items)} items; this server takes at most {max_inputs} per request")
    return [_text(i, item) for i, item in enumerate(items)]


def _text(i: int, item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and set(item) == {"text"} and isinstance(item["text"], str):
        return item["text"]
    if isinstance(item, (int, list)):
        raise InputError(f"input {i}: token-id input is not supported; send text")
    raise InputError(f"input {i}: only text is supported (a string or {{\"text\": ...}}), not {item!r:.80}")


def _embedding_types(body: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    jina, openai = body.get("embedding_type"), body.get("encoding_format")
    if jina is not None and openai is not None:
        raise InputError("give embedding_type (Jina API) or encoding_format (OpenAI API), not both")
    if openai is not None:
        if openai not in OPENAI_ENCODINGS:
            raise InputError(f"encoding_format {openai!r} is not one of {list(OPENAI_ENCODINGS)}")
        return (openai,), False
    if jina is None:
        return ("float",), False
    keyed = isinstance(jina, list)
    types = jina if keyed else [jina]
    if not types:
        raise InputError("embedding_type is an empty list")
    for t in types:
        if not isinstance(t, str):
            raise InputError(f"embedding_type must be a string or a list of strings, not {t!r}")
        check_embedding_type(t)
    return tuple(dict.fromkeys(types)), keyed


MAX_SEARCH_K = 1000


@dataclass(frozen=True)
class SearchJob:
    """POST /v1/search: the arguments of `KnowledgeBase.search`."""

    query: str
    k: int
    mode: str
    path: str | None
    kinds: tuple[str, ...]
    since: str | float | None  # ISO date or POSIX time
    per_doc: int
    rerank: bool = False  # recall `candidates`, return the reranker's k best (needs serve --reranker)
    candidates: int | None = None
    instruction: str | None = None  # the reranker's task


def parse_search(body: Any) -> SearchJob:
    """{"query", "k": 10, "mode": "hybrid", "path": null, "kinds": [], "since": null, "per_doc": 2,
    "rerank": false, "candidates": null, "instruction": null}."""
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, not {type(body).__name__}")
    query = body.get("query")
    if not isinstance(query, str):
        raise InputError("query is required and must be a string")
    k, per_doc = optional_field(body, "k", int, 10), optional_field(body, "per_doc", int, 2)
    for name, value in (("k", k), ("per_doc", per_doc)):
        if isinstance(value, bool) or not 1 <= value <= MAX_SEARCH_K:
            raise InputError(f"{name} must be an integer from 1 to {MAX_SEARCH_K}, not {value!r}")
    kinds = optional_field(body, "kinds", list, [])
    if not all(isinstance(x, str) for x in kinds):
        raise InputError("kinds must be a list of strings, e.g. [\"markdown\", \"py\"]")
    since = body.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, (str, int, float))):
        raise InputError(f"since must be an ISO date string or a POSIX time, not {since!r}")
    rerank = optional_field(body, "rerank", bool, False)
    candidates = body.get("candidates")
    if candidates is not None and (isinstance(candidates, bool) or not isinstance(candidates, int)):
        raise InputError(f"candidates must be an integer or null, not {candidates!r}")
    return SearchJob(query, k, optional_field(body, "mode", str, "hybrid"), optional_field(body, "path", str, None),
                     tuple(kinds), since, per_doc, rerank, candidates, optional_field(body, "instruction", str, None))
