"""Embed a search query through a running `mlx-jina serve` instead of loading the model here.

Loading the model dominates a one-off `mlx-jina search`; a local server has it loaded already.
The server is used only if it answers quickly and serves the model the index was built with
(same id, revision and quantization; the size is asked for per request); anything else (nothing listening,
another model, an error) returns None and the caller embeds in-process. Standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from mlx_jina.kb.store import Binding
from mlx_jina.server.config import LOCAL_URL, SERVER_ENV

PROBE_TIMEOUT_S = 0.25  # a listening local server answers in milliseconds
EMBED_TIMEOUT_S = 10.0


def server_url() -> str:
    return os.environ.get(SERVER_ENV, LOCAL_URL).rstrip("/")


def embed_query(url: str, query: str, binding: Binding, *, token: str | None = None) -> tuple[np.ndarray | None, str]:
    """(the query's embedding, or None; a one-line note on what happened, for --verbose).
    token: the server's API token, if it needs one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        models = _call(f"{url}/v1/models", None, PROBE_TIMEOUT_S, headers)
    except (OSError, ValueError) as exc:
        return None, f"no mlx-jina server at {url} ({_reason(exc)}): embedding in-process"
    served = next((m for m in models.get("data", []) if _serves(m, binding)), None)
    if served is None:
        return None, f"the server at {url} serves another model than the index's {binding.model_id}: in-process"
    request = {"model": served["id"], "input": [query], "task": binding.query_task, "dimensions": binding.dimensions,
               "truncate": True, "encoding_format": "base64"}
    try:
        body = _call(f"{url}/v1/embeddings", request, EMBED_TIMEOUT_S, headers)
        vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        return None, f"the server at {url} failed to embed ({_reason(exc)}): embedding in-process"
    if vector.shape != (binding.dimensions,):
        return None, f"the server at {url} answered {vector.shape[0]} dimensions, not {binding.dimensions}: in-process"
    return vector.astype(np.float32), f"query embedded by the server at {url}"


def _serves(model: dict[str, Any], binding: Binding) -> bool:
    """The model the index was written with: same id (as the index records it), revision and
    quantization, and the index's size among its Matryoshka sizes."""
    return (model.get("model_id") == binding.model_id and model.get("revision") == binding.revision
            and model.get("quantization") == binding.quantization
            and binding.dimensions in model.get("matryoshka_dimensions", []))


def _call(url: str, body: dict[str, Any] | None, timeout: float, headers: dict[str, str]) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers | ({"Content-Type": "application/json"}
                                                                         if data else {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a local URL we were given
        return json.loads(response.read())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
