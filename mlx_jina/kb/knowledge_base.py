"""`KnowledgeBase`: the Python API the CLI mirrors (and a desktop app can embed)."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from platformdirs import user_data_path

from mlx_jina.errors import InputError
from mlx_jina.ingest import DEFAULT_MAX_BYTES, check_max_bytes
from mlx_jina.kb import probes
from mlx_jina.kb.indexer import BATCH_CHUNKS, Indexer, IndexReport
from mlx_jina.kb.rerank import check_candidates, rerank_hits
from mlx_jina.kb.search import Filters, Hit, check_options, search
from mlx_jina.kb.store import Binding, Store
from mlx_jina.spec import package_spec
from mlx_jina.unicode import check_unicode

if TYPE_CHECKING:
    from mlx_jina.embedder import Embedder
    from mlx_jina.remote import RemoteEmbedder
    from mlx_jina.rerank import Reranker

DB_ENV = "MLX_JINA_DB"
RERANKER_ENV = "MLX_JINA_RERANKER"
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _db_errors(method: _Method) -> _Method:
    """SQLite errors anywhere inside a public method become one-line DatabaseErrors naming the file."""

    @functools.wraps(method)
    def wrapper(self: KnowledgeBase, *args: Any, **kwargs: Any) -> Any:
        with self.store.errors():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def default_db_path() -> Path:
    """$MLX_JINA_DB, else index.db in the platform's user data folder (platformdirs): ~/Library/
    Application Support/mlx-jina (macOS), $XDG_DATA_HOME or ~/.local/share/mlx-jina (Linux),
    %LOCALAPPDATA%\\mlx-jina (Windows)."""
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV]).expanduser()
    return user_data_path("mlx-jina", appauthor=False) / "index.db"


class KnowledgeBase:
    """An offline, incrementally updated search index over folders of notes, in one SQLite file.

    model: an Embedder, or a hub id / folder to load on first need (None: the model the database
    was indexed with, else the default model). Status and keyword search never load a model.
    embedder: an already-made embedder instead of `model`, e.g. `RemoteEmbedder(url)` to embed
    through another engine; every writer must reproduce the DB's probe vectors (kb/probes.py).
    dimensions: Matryoshka size to store (None: the database's, else the model's full size).
    readonly: never write (None: when the file or its folder is not writable). Any problem with
    the file itself (not a database, corrupt, read-only, disk full) is a one-line DatabaseError.
    reranker: a Reranker, or a hub id / folder loaded on the first `search(rerank=True)` (None:
    $MLX_JINA_RERANKER, else Qwen/Qwen3-Reranker-0.6B).
    """

    def __init__(self, db_path: str | Path | None = None, *, model: str | Path | Embedder | None = None,
                 embedder: Embedder | RemoteEmbedder | None = None, dimensions: int | None = None,
                 revision: str | None = None, quantize: int | None = None, readonly: bool | None = None,
                 reranker: str | Path | Reranker | None = None) -> None:
        if model is not None and embedder is not None:
            raise InputError("pass either model= (a name, folder or Embedder) or embedder=, not both")
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)
                                       or dimensions < 1):
            raise InputError(f"dimensions must be a positive integer (a Matryoshka size), not {dimensions!r}")
        self.db_path = Path(db_path).expanduser() if db_path else default_db_path()
        self.store = Store(self.db_path, readonly=readonly)
        self._model = model if embedder is None else embedder
        self._reranker = reranker
        self._revision, self._quantize = revision, quantize
        self._dimensions = dimensions
        self._embedder: Embedder | RemoteEmbedder | None = None

    # ---- the model ---------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder | RemoteEmbedder:
        """The model, loaded once and used for both passages and queries."""
        if self._embedder is None:
            if self._model is None or isinstance(self._model, (str, Path)):
                from mlx_jina.embedder import load

                bound = self.store.binding()
                name = self._model or (bound.model_id if bound else None)
                revision, quantize = self._revision, self._quantize
                if self._model is None and bound:
                    revision, quantize = revision or bound.revision, quantize or bound.quantization
                self._embedder = load(name, revision=revision, quantize=quantize)
            else:
                self._embedder = self._model
        return self._embedder

    @property
    def reranker(self) -> Reranker:
        """The second-stage model, loaded on first need."""
        if self._reranker is None or isinstance(self._reranker, (str, Path)):
            from mlx_jina.rerank import load_reranker

            self._reranker = load_reranker(self._reranker or os.environ.get(RERANKER_ENV) or None)
        return self._reranker

    @property
    def built_with_test_checkpoint(self) -> bool:
        """Whether the index's vectors come from the bundled tiny checkpoint (the offline fallback):
        then they carry no meaning, and searches that did not ask for a mode search by keywords."""
        from mlx_jina.embedder import TINY_CHECKPOINT

        bound = self.store.binding()
        return bool(bound and bound.model_id == str(TINY_CHECKPOINT.resolve()))

    def wanted_binding(self, *, fresh: bool = False) -> Binding:
        """What this model and size would record; fresh: ignore the database's current binding."""
        info = self.embedder.info
        bound = None if fresh else self.store.binding()
        dims = self._dimensions if self._dimensions is not None else (bound.dimensions if bound else info.dimensions)
        if dims not in info.matryoshka_dimensions:
            sizes = list(info.matryoshka_dimensions)
            raise InputError(f"dimensions={dims} is not a Matryoshka size of this model: {sizes}")
        model_id = info.model_id
        if Path(model_id).expanduser().is_dir():  # local folder: compare by real location
            model_id = str(Path(model_id).expanduser().resolve())
        return Binding(model_id=model_id, revision=info.revision, quantization=info.quantization,
                       dimensions=dims)

    def _bound(self) -> Binding:
        """Bind a fresh DB to the model, or check the model matches the DB (ModelMismatchError)."""
        wanted = self.wanted_binding()
        self.store.bind(wanted)
        return wanted

    # ---- writing -----------------------------------------------------------------------------
    @_db_errors
    def index(self, folder: str | Path, *, include: Iterable[str] = (), exclude: Iterable[str] = (),
              max_bytes: int = DEFAULT_MAX_BYTES, reembed: bool = False, progress: bool = False,
              follow_links: bool = False, allow_empty: bool = False) -> IndexReport:
        """Sync the index with `folder`: embed new and changed files, move renamed ones, drop deleted.
        reembed: forget every stored vector first (to switch models or dimensions). include/exclude:
        gitignore-style globs (a single string is one glob). follow_links: follow symlinks that lead
        outside the folder. allow_empty: a folder that is missing or has nothing to index removes its
        files from the index (else WouldEmptyIndexError)."""
        include, exclude = _globs("include", include), _globs("exclude", exclude)
        check_max_bytes(max_bytes)
        self.store.require_writable()
        if reembed:
            self.store.reset(self.wanted_binding(fresh=True))
        return self._indexer().sync(Path(folder), include=include, exclude=exclude, max_bytes=max_bytes,
                                    progress=progress, ignore=self.own_files(), follow_links=follow_links,
                                    allow_empty=allow_empty)

    @_db_errors
    def add(self, path: str | Path, *, progress: bool = False) -> IndexReport:
        """Index one file (or a folder) without removing anything else from the index."""
        self.store.require_writable()
        path = Path(path).expanduser().resolve()
        if path.is_dir():
            return self._indexer().sync(path, remove_missing=False, progress=progress, ignore=self.own_files())
        if not path.exists():
            raise InputError(f"no such file: {path}")
        return self._indexer().sync(path.parent, include=["/" + _glob_escape(path.name)], remove_missing=False,
                                    progress=progress, ignore=self.own_files())

    @_db_errors
    def remove(self, path: str | Path) -> int:
        """Drop a file, or every file under a folder, from the index; returns how many."""
        self.store.require_writable()
        path = Path(path).expanduser().resolve()
        docs = list(self.store.documents_under(path).values())
        single = self.store.document(str(path))
        for doc in docs + ([single] if single else []):
            self.store.remove_document(doc.id)
        return len(docs) + (1 if single else 0)

    def _indexer(self) -> Indexer:
        binding = self._bound()
        self._check_space(binding)
        # a remote engine with N requests in flight wants N batches' worth of chunks per round
        batch_chunks = getattr(self.embedder, "batch_chunks", BATCH_CHUNKS)
        return Indexer(self.store, self.embedder, binding.dimensions, passage_task=binding.passage_task,
                       batch_chunks=batch_chunks)

    def _check_space(self, binding: Binding) -> None:
        """Before any write: the embedder must reproduce the DB's probe vectors (recorded on first write)."""
        fresh = probes.embed(self.embedder, task=binding.passage_task, dimensions=binding.dimensions)
        recorded = self.store.probe_vectors()
        if recorded is None:
            self.store.set_probe_vectors(probes.dumps(fresh))
            return
        who = f"the embedder ({self.embedder.info.model_id})"
        probes.check(probes.loads(recorded), fresh, db=self.db_path, who=who)

    def own_files(self) -> list[Path]:
        """The database's own files (never indexed or watched)."""
        db = self.db_path.resolve()
        return [db, Path(f"{db}-wal"), Path(f"{db}-shm"), Path(f"{db}-journal"), self.store.sidecar_path.resolve()]

    # ---- reading -----------------------------------------------------------------------------
    @_db_errors
    def search(self, query: str, *, k: int = 10, mode: str = "hybrid", path: str | None = None,
               kinds: Iterable[str] = (), since: float | str | date | None = None, per_doc: int = 2,
               rerank: bool = False, candidates: int | None = None, instruction: str | None = None,
               query_vector: np.ndarray | None = None) -> list[Hit]:
        """Ranked hits for `query`. mode: hybrid | vector | keyword. path: glob on the file's path
        (relative to its indexed folder, or absolute). kinds: markdown/code/pdf/... or extensions.
        since: only files modified at or after this date (ISO string, date or POSIX time).
        rerank: recall `candidates` hits (default max(k, 30)), then return the reranker's k best,
        each with its recall `score` and its `rerank_score`; instruction: the reranker's task.
        query_vector: the query's embedding made elsewhere (a running server, see kb/local_server.py)
        with the index's model, query task and size; then no model is loaded here."""
        if not isinstance(query, str):
            raise InputError(f"the query must be a string, not {type(query).__name__}")
        if not query.strip():
            raise InputError("the query is empty")
        check_unicode(query, "the query")
        check_options(mode=mode, k=k, per_doc=per_doc)
        if not isinstance(rerank, bool):
            raise InputError(f"rerank must be true or false, not {rerank!r}")
        if rerank:
            spec = package_spec().reranker
            candidates = max(k, spec.default_candidates) if candidates is None else candidates
            check_candidates(candidates, k, spec.max_documents)
            recalled = self.search(query, k=candidates, mode=mode, path=path, kinds=kinds, since=since,
                                   per_doc=per_doc, query_vector=query_vector)
            return rerank_hits(self.store, self.reranker, query, recalled, k=k, instruction=instruction)
        if instruction is not None:
            raise InputError("instruction is the reranker's: pass it with rerank=True")
        filters = _filters(path, kinds, since)
        bound = self.store.binding()
        if query_vector is not None and mode != "keyword" and bound is not None:
            if np.shape(query_vector) != (bound.dimensions,):
                raise InputError(f"query_vector has shape {np.shape(query_vector)}; the index stores "
                                 f"{bound.dimensions}-d vectors")
            query_vector = np.asarray(query_vector, dtype=np.float32)
        elif mode != "keyword" and bound is not None:
            binding = self._bound()
            query_vector = self.embedder.encode([query], task=binding.query_task, dimensions=binding.dimensions,
                                                truncate=True)[0]
        elif mode != "keyword":
            return []  # nothing indexed yet
        return search(self.store, query, query_vector, k=k, mode=mode, filters=filters, per_doc=per_doc)

    @_db_errors
    def status(self) -> dict[str, Any]:
        """Files, chunks, model, dimensions, database size, last index time."""
        return self.store.stats()

    def check(self) -> None:
        """Read the whole file once (DatabaseError if it is damaged): `serve` does this before starting."""
        self.store.verify()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _globs(name: str, patterns: Iterable[str] | str) -> tuple[str, ...]:
    """A single string is one glob, not a sequence of one-character globs."""
    globs = (patterns,) if isinstance(patterns, str) else tuple(patterns) if isinstance(patterns, Iterable) else None
    if globs is None or not all(isinstance(g, str) for g in globs):
        raise InputError(f"{name} must be gitignore-style glob strings, not {patterns!r}")
    return globs


def _filters(path: str | None, kinds: Iterable[str] | str, since: float | str | date | None) -> Filters:
    if path is not None and not isinstance(path, str):
        raise InputError(f"path must be a glob string, not {type(path).__name__}")
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    bad = [kind for kind in kinds if not isinstance(kind, str) or not kind.strip(". ")]
    if bad:
        raise InputError(f"kinds must be names such as 'markdown' or extensions such as 'md', not {bad[0]!r}")
    return Filters(path=path, kinds=kinds, since=_timestamp(since))


def _timestamp(since: float | str | date | None) -> float | None:
    """POSIX time of `since`. Times beyond what a float or the OS calendar holds are clamped (10**400
    means "after everything"); they are not errors, because their meaning is plain."""
    if since is None:
        return None
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        try:
            value = float(since)
        except OverflowError:  # an int past 1.8e308
            return math.inf if since > 0 else -math.inf
        if math.isnan(value):
            raise InputError("since must be a date or a POSIX time, not NaN")
        return value
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since)
        except ValueError:
            raise InputError(f"since={since!r} is not an ISO date such as 2026-01-01") from None
    if not isinstance(since, date):
        raise InputError(f"since must be an ISO date string, a date or POSIX time, not {type(since).__name__}")
    if not isinstance(since, datetime):
        since = datetime(since.year, since.month, since.day)
    try:
        return since.timestamp()
    except (OverflowError, OSError, ValueError):  # years 1 or 9999 in some time zones: the OS cannot say
        return since.replace(tzinfo=since.tzinfo or UTC).timestamp()


def _glob_escape(name: str) -> str:
    """A file name as a literal gitignore pattern."""
    return "".join("\\" + ch if ch in "*?[]!#\\" else ch for ch in name)
