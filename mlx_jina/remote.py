"""`RemoteEmbedder`: embed through another engine's `/v1/embeddings` (another `mlx-jina serve`,
vLLM, TEI) so a knowledge base can be indexed by a GPU box or a bigger Mac.

It has the same surface the knowledge base uses from a local `Embedder` (`encode`, `count_tokens`,
`info`), so `KnowledgeBase(..., model=RemoteEmbedder(url))` needs nothing else. Chunking still runs
here, with the model's own tokenizer, so a remote index has exactly the chunks a local one has.

The prompt contract (Package.toml's tasks):
- `jina` style (our server, Jina's API): the request carries `task`; the server adds the prompt.
- `openai` style (vLLM/TEI serving a per-task merged repo, e.g. `...-small-retrieval`): the server
  knows no tasks, so the prompt (`Query: ` / `Document: `) is prefixed here, and only the tasks of
  the served adapter are allowed. Vectors come back at full size; Matryoshka slicing and
  normalisation happen here, as in the local path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlx_jina.errors import InputError, RemoteEmbedderError
from mlx_jina.info import ModelInfo
from mlx_jina.spec import package_spec

EmbedStyle = Literal["jina", "openai"]
DEFAULT_BATCH_TOKENS = 8192
DEFAULT_TIMEOUT_S = 120.0
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SPLIT_STATUSES = frozenset({400, 413})  # "too many inputs" / "body too large": halve the batch
TOO_BIG_WORDS = ("too many", "too large", "maximum", "at most", "max-inputs", "batch size")  # in a 400's message


@dataclass(frozen=True)
class ServedModel:
    """What the endpoint says about itself in `/v1/models` (or what the user declared)."""

    name: str
    style: EmbedStyle
    model_id: str  # what the knowledge base records as the model
    revision: str | None
    quantization: int | None
    tasks: tuple[str, ...]
    max_length: int | None
    dimensions: int | None


class RemoteEmbedder:
    """Embeddings from an OpenAI/Jina-compatible endpoint, batched by tokens, N requests in flight.

    url: the server's base URL (`http://host:8765` or `.../v1`).
    model: the served model name to send (None: the first entry of `/v1/models`).
    style: `jina` | `openai` (None: `jina` if `/v1/models` lists tasks, as mlx-jina serve does).
    task: for an OpenAI-style server, the adapter its model was merged with (`retrieval`, ...);
        None: read from the served model's name (`jina-embeddings-v5-text-small-retrieval`).
    tokenizer: a local model folder / hub id whose tokenizer.json counts tokens for chunking and
        batching (None: the served model id when it is a local folder or hub id).
    """

    def __init__(self, url: str, *, model: str | None = None, style: EmbedStyle | None = None,
                 task: str | None = None, tokenizer: str | Path | None = None, concurrency: int = 4,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, retries: int = 5, backoff_s: float = 0.5) -> None:
        import httpx

        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InputError(f"--embed-url must be an http(s) URL, not {url!r}")
        if style not in (None, "jina", "openai"):
            raise InputError(f"embed style must be 'jina' or 'openai', not {style!r}")
        for name, value in (("concurrency", concurrency), ("batch_tokens", batch_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, not {value!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InputError(f"retries must be a non-negative integer, not {retries!r}")
        self.base_url = url.rstrip("/").removesuffix("/v1")
        self.concurrency = concurrency
        self.batch_tokens = batch_tokens
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._lock = threading.Lock()
        self.served = self._discover(model, style, task)
        self._tokenizer = _load_tokenizer(tokenizer, self.served)
        pkg = package_spec()
        self.tasks = {name: pkg.tasks[name] for name in self.served.tasks}
        self.max_length = min(pkg.max_length, self.served.max_length or pkg.max_length)
        self.dimensions: tuple[int, ...] = ()  # learnt from the first response (full size)

    # ---- what the knowledge base reads ---------------------------------------------------------
    @property
    def batch_chunks(self) -> int:
        """Chunks the indexer hands over per call: enough for every request slot to be busy."""
        return 64 * self.concurrency

    @property
    def info(self) -> ModelInfo:
        if not self.dimensions:
            self._learn_dimensions()
        return ModelInfo(
            model_id=self.served.model_id, revision=self.served.revision, folder=None,
            layout=f"remote:{self.served.style}", weights_file=None, adapters=(), merged_adapter=None,
            dimensions=self.dimensions[-1], matryoshka_dimensions=self.dimensions, max_length=self.max_length,
            quantization=self.served.quantization, dtype="remote", tasks=tuple(self.tasks), device=self.base_url)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts of raw texts, without any task prefix (what chunking budgets)."""
        from mlx_jina.model.load import token_counts

        return token_counts(self._tokenizer, texts)

    def encode(self, texts: Sequence[str], *, task: str, dimensions: int | None = None, truncate: bool = False,
               **_: Any) -> np.ndarray:
        """(len(texts), dimensions) float32, unit norm, in input order; one task for all texts."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError("texts must be a list of strings")
        if task not in self.tasks:
            raise InputError(f"the endpoint {self.base_url} serves tasks {sorted(self.tasks)}, not {task!r}")
        if not texts:
            return np.zeros((0, dimensions or (self.dimensions[-1] if self.dimensions else 0)), np.float32)
        batches = self._batches(list(texts), task)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
            parts = list(pool.map(lambda idx: (idx, self._embed(task, [texts[i] for i in idx], truncate)), batches))
        width = parts[0][1].shape[1]
        out = np.empty((len(texts), width), np.float32)
        for idx, vecs in parts:
            out[idx] = vecs
        return _slice_normalise(out, dimensions, self._sizes(width))

    # ---- the wire ----------------------------------------------------------------------------
    def _discover(self, model: str | None, style: EmbedStyle | None, task: str | None) -> ServedModel:
        listed: list[dict[str, Any]] = []
        try:
            body = self._request("GET", "/v1/models", attempts=2)  # a server that is not there: say so fast
            listed = [m for m in body.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except RemoteEmbedderError:
            if model is None or style is None:
                raise
        entry = next((m for m in listed if model in (m["id"], *m.get("aliases", ()))), None) if model else None
        if model is None:
            if not listed:
                raise RemoteEmbedderError(f"{self.base_url}/v1/models lists no model; pass --embed-model")
            entry = listed[0]
        name = model or entry["id"]  # type: ignore[index]
        entry = entry or {}
        style = style or ("jina" if entry.get("tasks") else "openai")
        pkg = package_spec()
        if style == "jina":
            tasks = tuple(t for t in entry.get("tasks") or pkg.tasks if t in pkg.tasks)
        else:
            adapter = task or _adapter_from_name(name)
            if adapter is None:
                raise InputError(f"cannot tell which task adapter the OpenAI-style model {name!r} was merged with; "
                                 f"pass --embed-task ({', '.join(pkg.adapters)})")
            if adapter not in pkg.adapters:
                raise InputError(f"unknown task adapter {adapter!r}; one of {', '.join(pkg.adapters)}")
            tasks = tuple(n for n, t in pkg.tasks.items() if t.adapter == adapter)
        return ServedModel(name=name, style=style, model_id=str(entry.get("model_id") or name),
                           revision=entry.get("revision"), quantization=entry.get("quantization"),
                           tasks=tasks, max_length=entry.get("max_length"), dimensions=entry.get("dimensions"))

    def _batches(self, texts: list[str], task: str) -> list[list[int]]:
        """Indices grouped so each request stays within batch_tokens (the prompt counted)."""
        prompt = self.count_tokens([self.tasks[task].prompt])[0]
        sizes = [min(n + prompt, self.max_length) for n in self.count_tokens(texts)]
        order = sorted(range(len(texts)), key=sizes.__getitem__)
        batches: list[list[int]] = [[]]
        used = 0
        for i in order:
            if batches[-1] and used + sizes[i] > self.batch_tokens:
                batches.append([])
                used = 0
            batches[-1].append(i)
            used += sizes[i]
        return batches

    def _embed(self, task: str, texts: list[str], truncate: bool) -> np.ndarray:
        body: dict[str, Any] = {"model": self.served.name, "encoding_format": "float"}
        if self.served.style == "jina":
            body |= {"input": texts, "task": task, "truncate": truncate}
        else:
            body["input"] = [self.tasks[task].prompt + t for t in texts]
        data = self._request("POST", "/v1/embeddings", json=body, split_ok=len(texts) > 1)
        if data is None:  # the server said the batch is too big: halve it
            half = len(texts) // 2
            first, second = self._embed(task, texts[:half], truncate), self._embed(task, texts[half:], truncate)
            return np.concatenate([first, second])
        rows = sorted(data.get("data", []), key=lambda d: d.get("index", 0))
        if len(rows) != len(texts):
            raise RemoteEmbedderError(
                f"{self.base_url}/v1/embeddings returned {len(rows)} vectors for {len(texts)} texts")
        try:
            vecs = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteEmbedderError(f"{self.base_url}/v1/embeddings returned no float vectors ({exc})") from None
        if vecs.ndim != 2 or not np.isfinite(vecs).all():
            raise RemoteEmbedderError(f"{self.base_url}/v1/embeddings returned malformed vectors")
        return vecs

    def _request(self, method: str, path: str, *, json: Any = None, split_ok: bool = False,
                 attempts: int | None = None) -> Any:
        """One call's JSON, with retries (backoff, Retry-After) on 429/5xx/timeouts/refused connections.
        None when split_ok and the server said the batch is too big."""
        import httpx

        url = self.base_url + path
        last = ""
        attempts = min(attempts or self.retries + 1, self.retries + 1)
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), 30.0))
            try:
                r = self._http.request(method, path, json=json)
            except httpx.TimeoutException:
                last = "timed out"
                continue
            except httpx.TransportError as exc:
                last = f"unreachable ({exc.__class__.__name__}: {exc})"
                continue
            if r.status_code == 200:
                try:
                    return r.json()
                except ValueError:
                    raise RemoteEmbedderError(f"{url} answered 200 with a body that is not JSON") from None
            if split_ok and r.status_code in SPLIT_STATUSES and _too_big(r):
                return None
            if r.status_code in RETRY_STATUSES:
                last = f"HTTP {r.status_code}: {_message(r)}"
                wait = _retry_after(r)
                if wait is not None and attempt + 1 < attempts:
                    time.sleep(min(wait, 30.0))
                continue
            raise RemoteEmbedderError(f"{url} answered HTTP {r.status_code}: {_message(r)}")
        raise RemoteEmbedderError(f"{url} {last} after {attempts} attempts; files already indexed stay "
                                  "indexed, and the next run resumes")

    def _learn_dimensions(self) -> None:
        """The full vector size: from /v1/models when it says, else from embedding one short text."""
        if self.served.dimensions:
            self._sizes(self.served.dimensions)
            return
        task = "retrieval.passage" if "retrieval.passage" in self.tasks else next(iter(self.tasks))
        self._sizes(self._embed(task, ["dimensions probe"], True).shape[1])

    def _sizes(self, width: int) -> tuple[int, ...]:
        with self._lock:
            if not self.dimensions:
                self.dimensions = tuple(d for d in package_spec().matryoshka_dimensions if d < width) + (width,)
        return self.dimensions

    def close(self) -> None:
        self._http.close()


def _slice_normalise(vecs: np.ndarray, dimensions: int | None, sizes: tuple[int, ...]) -> np.ndarray:
    """Matryoshka as the local path does it: slice, then L2-normalise."""
    if dimensions is not None:
        if dimensions not in sizes:
            raise InputError(f"dimensions={dimensions!r} is not a Matryoshka size of the remote model: {list(sizes)}")
        vecs = vecs[:, :dimensions]
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return (vecs / np.maximum(norms, 1e-12)).astype(np.float32)


def _adapter_from_name(name: str) -> str | None:
    """`jinaai/jina-embeddings-v5-text-small-retrieval` (Package.toml's per-task repos) -> `retrieval`."""
    pkg = package_spec()
    for repo_id, repo in pkg.repos.items():
        if repo.adapter and (name == repo_id or name == repo_id.split("/")[-1]):
            return repo.adapter
    tail = name.rstrip("/").split("/")[-1].removesuffix("-mlx")
    return next((a for a in sorted(pkg.adapters, key=len, reverse=True) if tail.endswith("-" + a)), None)


def _load_tokenizer(tokenizer: str | Path | None, served: ServedModel) -> Any:
    from mlx_jina.model import hub
    from mlx_jina.model.load import read_tokenizer

    source = tokenizer or served.model_id
    folder, _, _ = hub.resolve(source, only=["tokenizer.json", "tokenizer_config.json"])
    return read_tokenizer(folder)


def _too_big(r: Any) -> bool:
    text = r.text.lower()
    return r.status_code == 413 or any(w in text for w in TOO_BIG_WORDS)


def _retry_after(r: Any) -> float | None:
    try:
        return float(r.headers.get("retry-after", ""))
    except ValueError:
        return None


def _message(r: Any) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200].strip() or r.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message", err))[:300]
        return str(body.get("detail") or err or body)[:300]
    return str(body)[:300]
