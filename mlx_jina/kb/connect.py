"""Open SQLite with the sqlite-vec extension on any Python.

Many Pythons' `sqlite3` cannot load extensions (macOS system Python, python.org builds, some pyenv
builds: no `enable_load_extension`). We try, in order: the stdlib `sqlite3`, `sqlean.py` (a
dependency: a drop-in `sqlite3` with its own SQLite), `pysqlite3` (Linux wheels), and stop at the
first that loads sqlite-vec and has FTS5. $MLX_JINA_SQLITE=sqlite3|sqlean|pysqlite3 forces one.
One process must not open the same file through two of them: each bundles its own SQLite, and two
SQLite copies in one process drop each other's POSIX locks (other processes and tools are fine).
"""

from __future__ import annotations

import functools
import importlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from mlx_jina.errors import SQLiteUnavailableError
from mlx_jina.kb import keywords

BACKENDS = ("sqlite3", "sqlean", "pysqlite3.dbapi2")
BACKEND_ENV = "MLX_JINA_SQLITE"
#: Page size of new database files (existing ones keep theirs). At 1024-d a chunk's vector row
#: (bits + int8, schema.py) is ~1,169 B: 4 KiB pages hold 3 (~190 B/chunk unused), 8 KiB pages 7
#: (~1 B). Measured at schema 4 (int8 rows alone), 20k chunks at 1024-d: 1,963 -> 1,758 B/chunk, for
#: +0.9 ms CPU per 1,000 rescored rows (16 KiB: 1,685 B, +1.9 ms).
PAGE_SIZE = 8192
#: Reads through a memory map instead of one pread() + copy per page: int8 rescoring reads ~1,500
#: random rows per query at 1M chunks; measured 1M x 384-d, 1,500 rows: 8.2 -> 5.3 ms CPU (a larger
#: page cache did not help: the rows are random). SQLite clamps this to its compile-time maximum;
#: writes still go through its normal I/O.
MMAP_BYTES = 1 << 40

_ALIASES = {"sqlite3": "sqlite3", "sqlean": "sqlean", "pysqlite3": "pysqlite3.dbapi2"}


@dataclass(frozen=True)
class Backend:
    """The DB-API module that worked and what it runs (shown by `mlx-jina doctor`)."""

    module: ModuleType
    name: str
    sqlite_version: str
    vec_version: str

    def describe(self) -> str:
        return f"{self.name} (SQLite {self.sqlite_version}, sqlite-vec {self.vec_version})"


def _candidates() -> tuple[str, ...]:
    forced = os.environ.get(BACKEND_ENV, "").strip()
    if not forced:
        return BACKENDS
    if forced not in _ALIASES:
        raise SQLiteUnavailableError(f"${BACKEND_ENV}={forced!r} is not one of {sorted(_ALIASES)}")
    return (_ALIASES[forced],)


def _open(module: ModuleType, path: str, **kwargs: Any) -> Any:
    """A connection of `module` with sqlite-vec loaded; raises with a short reason if impossible."""
    import sqlite_vec

    conn = module.connect(path, isolation_level=None, check_same_thread=False, **kwargs)
    try:
        if not hasattr(conn, "enable_load_extension"):
            raise RuntimeError("this build cannot load extensions (no enable_load_extension)")
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.enable_load_extension(False)
        conn.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
        conn.execute("DROP TABLE temp.fts5_probe")
    except Exception:
        conn.close()
        raise
    return conn


def probe() -> list[tuple[str, str]]:
    """(backend, "ok: ..." or the reason it fails) for every candidate, for `mlx-jina doctor`."""
    report = []
    for name in BACKENDS:
        try:
            found = _try(name)
            report.append((name, f"ok: SQLite {found.sqlite_version}, sqlite-vec {found.vec_version}"))
        except Exception as exc:  # noqa: BLE001 - every failure is a line of the report
            report.append((name, f"unusable: {exc}"))
    return report


def _try(name: str) -> Backend:
    module = importlib.import_module(name)
    conn = _open(module, ":memory:")
    (vec,) = conn.execute("SELECT vec_version()").fetchone()
    conn.close()
    return Backend(module, name, module.sqlite_version, vec)


@functools.cache
def backend() -> Backend:
    """The first binding that loads sqlite-vec and has FTS5 (probed once per process)."""
    errors = []
    for name in _candidates():
        try:
            return _try(name)
        except Exception as exc:  # noqa: BLE001 - try the next binding, report all if none works
            errors.append(f"{name}: {exc}")
    raise SQLiteUnavailableError(
        "no SQLite binding here can load the sqlite-vec extension:\n  " + "\n  ".join(errors)
        + "\nInstall one that can: `pip install sqlean.py` (macOS arm64 and Linux wheels) or, on Linux, "
        "`pip install pysqlite3-binary`; or use a Python built with loadable SQLite extensions."
    )


def connect(path: str | Path, *, timeout: float = 30.0, readonly: bool = False) -> tuple[Any, Backend]:
    """Connection in autocommit mode (we BEGIN/COMMIT ourselves), WAL, sqlite-vec loaded, and the
    keyword-text function the FTS triggers call. readonly: open with SQLite's mode=ro, or
    immutable=1 where the folder cannot hold the WAL's shared-memory file (a read-only folder or
    volume), so such a file can still be searched."""
    found = backend()
    conn = _open_readonly(found.module, Path(path), timeout) if readonly else _open(found.module, str(path),
                                                                                   timeout=timeout)
    keywords.register(conn)
    if not readonly:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # new files only: see PAGE_SIZE
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    return conn, found


def _open_readonly(module: ModuleType, path: Path, timeout: float) -> Any:
    uri = "file:" + urllib.parse.quote(os.fsencode(path.absolute())) + "?mode=ro"
    conn = _open(module, uri, timeout=timeout, uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except module.Error:
        conn.close()
        if os.access(path.parent, os.W_OK):
            raise
        conn = _open(module, uri + "&immutable=1", timeout=timeout, uri=True)
    return conn
