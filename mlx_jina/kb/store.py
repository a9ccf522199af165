"""The SQLite side of the knowledge base: one connection, the model binding, and every write.

Each write method is one transaction, so a process killed at any moment leaves either the old or
the new state of a document, never a mix (SQLite's journal covers the FTS5 shadow tables
too). Writers use BEGIN IMMEDIATE and WAL mode, so searches keep running while an index run writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from mlx_jina.errors import DatabaseError, InputError, ModelMismatchError, SchemaError
from mlx_jina.kb.binary_index import SIDECAR_SUFFIX, BinaryIndex, IndexCache
from mlx_jina.kb.connect import backend, connect
from mlx_jina.kb.dbfile import describe, rebuild_hint, writable
from mlx_jina.kb.paths import from_sql, sql_bytes, to_sql
from mlx_jina.kb.schema import NEW_VECTORS_TOKEN, SCHEMA_VERSION, migrate

CODEC = "bit+int8"  # see mlx_jina/kb/vectors.py


@dataclass(frozen=True)
class Binding:
    """What the stored vectors were made with; searching with anything else would be meaningless."""

    model_id: str
    revision: str | None
    quantization: int | None
    dimensions: int
    passage_task: str = "retrieval.passage"
    query_task: str = "retrieval.query"
    codec: str = CODEC


@dataclass(frozen=True)
class StoredDoc:
    id: int
    path: str
    content_hash: bytes  # sha256 of the file's bytes
    size: int
    mtime: float


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to write: its text and where it is, plus its encoded vector."""

    seq: int
    heading: str
    start_line: int
    end_line: int
    text: str
    body: str
    text_hash: bytes  # sha256 of `text`
    bits: bytes
    rescore: bytes


class Store:
    """readonly: None decides by the file's permissions; True never writes (status, search, serve)."""

    def __init__(self, path: str | Path, *, readonly: bool | None = None) -> None:
        self.path = Path(path)
        memory = str(path) == ":memory:"
        if readonly is None:
            readonly = not memory and self.path.exists() and not writable(self.path)
        self.readonly = readonly
        if not memory:
            self._check_file()
        self._sqlite_error = backend().module.Error
        with self.errors():
            self.conn, self.backend = connect(path, readonly=readonly)
            try:
                self.conn.execute("PRAGMA foreign_keys=ON")
                migrate(self.conn, readonly=readonly)
            except SchemaError as exc:
                self.conn.close()
                raise SchemaError(f"{self.path}: {exc}") from None
            except BaseException:
                self.conn.close()
                raise
        self._lock = threading.RLock()  # one connection: one transaction at a time across threads
        self._depth = 0  # nesting of transaction() on the thread holding the lock
        self._index = IndexCache(None if str(path) == ":memory:" else self.sidecar_path)

    def _check_file(self) -> None:
        """Problems with the file itself, said before SQLite says them less clearly."""
        if self.path.is_dir():
            raise DatabaseError(f"{self.path}: is a folder, not a database file")
        if self.readonly:
            if not self.path.exists():
                raise DatabaseError(f"{self.path}: no such database; build it with `mlx-jina index FOLDER`")
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(f"{self.path}: cannot create its folder ({exc.strerror or exc})") from None
        if not self.path.exists() and not writable(self.path):
            raise DatabaseError(f"{self.path}: cannot create the database: its folder is read-only")

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Within: any SQLite error becomes a one-line DatabaseError naming the file (see dbfile)."""
        try:
            yield
        except self._sqlite_error as exc:
            raise DatabaseError(describe(self.path, exc, getattr(self, "conn", None))) from exc

    def require_writable(self) -> None:
        if self.readonly:
            raise DatabaseError(f"{self.path}: read-only: indexing needs write access to the file and its folder; "
                                "`status` and `search` work without it")

    def verify(self) -> None:
        """Read every page (PRAGMA quick_check): for `serve`, which must not start on a broken file."""
        with self.errors():
            state = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if state != "ok":
            raise DatabaseError(f"{self.path}: corrupt ({state}): {rebuild_hint(self.path)}")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sidecar_path(self) -> Path:
        """The Hamming index's cache file next to the database (safe to delete at any time)."""
        return Path(f"{self.path}{SIDECAR_SUFFIX}")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN IMMEDIATE ... COMMIT; nested uses join the outer transaction (write_documents)."""
        with self._lock:
            outer = self._depth == 0
            self._depth += 1
            try:
                if outer:
                    self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    if outer and self.conn.in_transaction:  # SQLite rolls back by itself after SQLITE_FULL
                        self.conn.execute("ROLLBACK")
                    raise
                if outer:
                    self.conn.execute("COMMIT")
            finally:
                self._depth -= 1

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A read transaction: everything read inside sees one committed state of the database
        (WAL), so the vector index, the rescoring vectors and the hits always agree."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def vectors_token(self) -> str:
        """Changes in every transaction that changes any chunk (its text or vector): caches of
        what the chunks hold are valid while it stays the same."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'vectors_token'").fetchone()
        return row[0] if row else ""

    def vector_index(self) -> BinaryIndex:
        """The Hamming index of the current snapshot (call inside `snapshot()`)."""
        return self._index.current(self.conn, self.vectors_token())

    def int8_vectors(self, chunk_ids: Sequence[int] | np.ndarray) -> tuple[list[int], np.ndarray]:
        """(ids found, int8 [n, D]) for these chunks, by rowid; deleted ones are simply absent."""
        if not len(chunk_ids):
            return [], np.zeros((0, 0), dtype=np.int8)
        rows = self.conn.execute(
            f"SELECT chunk_id, int8 FROM chunk_vectors WHERE chunk_id IN ({','.join(str(int(i)) for i in chunk_ids)})"
        ).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.int8)
        return [r[0] for r in rows], np.frombuffer(b"".join(r[1] for r in rows), dtype=np.int8).reshape(len(rows), -1)

    # ---- meta and the model binding ---------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def _set_meta(self, conn: Any, values: dict[str, Any]) -> None:
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, None if v is None else str(v)) for k, v in values.items()],
        )

    def binding(self) -> Binding | None:
        meta = self.meta()
        if "model_id" not in meta:
            return None
        quant = meta.get("quantization")
        return Binding(
            model_id=meta["model_id"], revision=meta.get("revision"),
            quantization=int(quant) if quant else None, dimensions=int(meta["dimensions"]),
            passage_task=meta["passage_task"], query_task=meta["query_task"], codec=meta["codec"],
        )

    def bind(self, wanted: Binding) -> None:
        """Record the binding in a fresh database; in a bound one, raise if it differs."""
        current = self.binding()
        if current is None:
            _check_dimensions(wanted.dimensions)
            with self.transaction() as conn:
                self._set_meta(conn, asdict(wanted) | {"created_at": time.time()})
                conn.execute(NEW_VECTORS_TOKEN)
            return
        if current != wanted:
            diff = [f"{f.name}: index has {getattr(current, f.name)!r}, requested {getattr(wanted, f.name)!r}"
                    for f in fields(Binding) if getattr(current, f.name) != getattr(wanted, f.name)]
            raise ModelMismatchError(
                f"{self.path} was indexed with a different model setup ({'; '.join(diff)}). "
                f"Use --model {current.model_id!r}"
                + (f" --dims {current.dimensions}" if current.dimensions != wanted.dimensions else "")
                + " to search it, or re-embed everything with the new one: `mlx-jina index --reembed FOLDER`."
            )

    def probe_vectors(self) -> str | None:
        """The probe vectors recorded when the vectors' space was fixed (see kb/probes.py), if any."""
        return self.meta().get("probe_vectors")

    def set_probe_vectors(self, value: str) -> None:
        with self.transaction() as conn:
            self._set_meta(conn, {"probe_vectors": value})

    def reset(self, wanted: Binding) -> None:
        """Forget every document and vector and bind to a new model (for --reembed)."""
        _check_dimensions(wanted.dimensions)
        with self.transaction() as conn:
            for table in ("chunk_vectors", "chunks", "documents", "meta"):
                conn.execute(f"DELETE FROM {table}")
            self._set_meta(conn, asdict(wanted) | {"created_at": time.time()})
            conn.execute(NEW_VECTORS_TOKEN)

    def mark_indexed(self) -> None:
        with self.transaction() as conn:
            self._set_meta(conn, {"last_index_at": time.time()})

    # ---- reads the indexer needs -----------------------------------------------------------
    def documents_under(self, root: Path) -> dict[str, StoredDoc]:
        """Stored documents whose absolute path lies under `root`, by path."""
        prefix = sql_bytes(str(root).rstrip("/") + "/")
        rows = self.conn.execute(
            "SELECT id, path, content_hash, size, mtime FROM documents WHERE substr(CAST(path AS BLOB), 1, ?) = ?",
            (len(prefix), prefix),
        ).fetchall()
        docs = [StoredDoc(row[0], from_sql(row[1]), *row[2:]) for row in rows]
        return {doc.path: doc for doc in docs}

    def document(self, path: str) -> StoredDoc | None:
        row = self.conn.execute(
            "SELECT id, path, content_hash, size, mtime FROM documents WHERE path = ?", (to_sql(path),)
        ).fetchone()
        return StoredDoc(row[0], from_sql(row[1]), *row[2:]) if row else None

    def vectors_for(self, text_hashes: Sequence[bytes]) -> dict[bytes, tuple[bytes, bytes]]:
        """Stored (bits, rescore) of chunks whose embedded text hashes match: reused, not re-embedded."""
        found: dict[bytes, tuple[bytes, bytes]] = {}
        with self._lock:  # the index run's writer thread shares the connection
            self._find_vectors(dict.fromkeys(text_hashes), found)
        return found

    def _find_vectors(self, text_hashes: Iterable[bytes], found: dict[bytes, tuple[bytes, bytes]]) -> None:
        for text_hash in text_hashes:
            row = self.conn.execute(
                "SELECT v.bits, v.int8 FROM chunks c JOIN chunk_vectors v ON v.chunk_id = c.id "
                "WHERE c.text_hash = ? LIMIT 1", (text_hash,)
            ).fetchone()
            if row:
                found[text_hash] = (bytes(row[0]), bytes(row[1]))

    # ---- writes: one transaction each ------------------------------------------------------
    def write_document(self, *, path: str, root: str, rel: str, kind: str, language: str | None,
                       content_hash: bytes, size: int, mtime: float, chunks: Sequence[NewChunk]) -> None:
        """Replace a document's row and all its chunks, FTS rows and vectors."""
        db_path = to_sql(path)
        with self.transaction() as conn:
            row = conn.execute("SELECT id FROM documents WHERE path = ?", (db_path,)).fetchone()
            values = (to_sql(root), to_sql(rel), kind, language, content_hash, size, mtime, time.time())
            if row:
                doc_id = row[0]
                self._delete_chunks(conn, doc_id)
                conn.execute(
                    "UPDATE documents SET root=?, rel=?, kind=?, language=?, content_hash=?, size=?, mtime=?, "
                    "indexed_at=? WHERE id=?", (*values, doc_id))
            else:
                doc_id = conn.execute(
                    "INSERT INTO documents(root, rel, kind, language, content_hash, size, mtime, indexed_at, path) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, db_path)).lastrowid
            for c in chunks:
                chunk_id = conn.execute(
                    "INSERT INTO chunks(doc_id, seq, heading, start_line, end_line, header, body, text_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc_id, c.seq, c.heading, c.start_line, c.end_line, _header(c), c.body, c.text_hash),
                ).lastrowid
                conn.execute("INSERT INTO chunk_vectors(chunk_id, doc_id, bits, int8) VALUES (?, ?, ?, ?)",
                             (chunk_id, doc_id, c.bits, c.rescore))
            conn.execute(NEW_VECTORS_TOKEN)

    def write_documents(self, documents: Sequence[dict[str, Any]]) -> None:
        """Several `write_document`s (keyword arguments each) in one transaction: all or none."""
        with self.transaction():
            for document in documents:
                self.write_document(**document)

    def move_document(self, doc_id: int, *, path: str, root: str, rel: str, size: int, mtime: float) -> None:
        """A rename (same bytes, new path): the chunks and vectors stay as they are."""
        with self.transaction() as conn:
            conn.execute("UPDATE documents SET path=?, root=?, rel=?, size=?, mtime=? WHERE id=?",
                         (to_sql(path), to_sql(root), to_sql(rel), size, mtime, doc_id))

    def touch_document(self, doc_id: int, *, size: int, mtime: float) -> None:
        """Same bytes, new mtime (e.g. `touch`): remember it so the next run skips the hash."""
        with self.transaction() as conn:
            conn.execute("UPDATE documents SET size=?, mtime=? WHERE id=?", (size, mtime, doc_id))

    def remove_document(self, doc_id: int) -> None:
        with self.transaction() as conn:
            self._delete_chunks(conn, doc_id)
            conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def _delete_chunks(self, conn: Any, doc_id: int) -> None:
        conn.execute("DELETE FROM chunk_vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE doc_id = ?)", (doc_id,))
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute(NEW_VECTORS_TOKEN)

    # ---- status ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        meta = self.meta()
        files, chunks = self.conn.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)").fetchone()
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {
            "db": str(self.path), "access": "read-only" if self.readonly else "read-write",
            "schema_version": SCHEMA_VERSION, "sqlite": self.backend.describe(),
            "files": files, "chunks": chunks, "model": meta.get("model_id"), "revision": meta.get("revision"),
            "quantization": meta.get("quantization"), "dimensions": int(meta["dimensions"]) if "dimensions" in meta
            else None, "codec": meta.get("codec"), "db_bytes": size,
            "last_index_at": float(meta["last_index_at"]) if "last_index_at" in meta else None,
        }


def _header(chunk: NewChunk) -> str:
    """What the embedded text adds before the body (stored instead of a second copy of the body)."""
    return chunk.text[: len(chunk.text) - len(chunk.body)] if chunk.text.endswith(chunk.body) else chunk.text


def _check_dimensions(dimensions: int) -> None:
    if dimensions % 8:
        raise InputError(f"dimensions must be a multiple of 8, got {dimensions}")
