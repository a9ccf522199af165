"""What is wrong with a knowledge-base file, in one line that names it and says what to do.

SQLite reports problems as error codes deep inside whatever statement met them; the user needs
"corrupt", "read-only" or "disk full" and the file's name, not a traceback. `describe` says so
(Store.errors raises it as a DatabaseError); an error SQLite does not classify is checked with
`PRAGMA quick_check`, so real corruption is called corrupt. `health` is `doctor`'s view.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from mlx_jina.errors import MlxJinaError

FULL_BYTES = 1 << 20  # less free space than this on the file's disk: "disk full"
FULL_PAGES = 64  # a write that failed this close to max_page_count: "disk full"
# primary SQLite result codes (sqlite3.h)
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26


def rebuild_hint(path: Path) -> str:
    return (f"move it aside and run `mlx-jina index FOLDER --db {path}` to rebuild it "
            "(your notes themselves are not affected)")


def writable(path: Path) -> bool:
    """Whether this process may write the file and its folder (WAL needs both)."""
    folder = path.parent if str(path.parent) else Path(".")
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def describe(path: Path, exc: Exception, conn: Any = None) -> str:
    """One line: the file, what is wrong with it, and the way out. conn: the connection that met
    the error, to tell a full database (sqlite-vec reports it as its own error) from others."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary == _NOTADB or "file is not a database" in text:
        return f"{path}: not a mlx-jina database (SQLite: {text}); pass another --db, or {rebuild_hint(path)}"
    if primary == _CORRUPT or "malformed" in text:
        return f"{path}: corrupt ({text}): {rebuild_hint(path)}"
    if primary in (_READONLY, _PERM) or "readonly" in text:
        return (f"{path}: read-only ({text}): indexing needs write access to the file and its folder; "
                "`status` and `search` work without it")
    if primary == _FULL or "disk is full" in text or _full(path, conn):
        return (f"{path}: disk full ({text}): free some space and run the same command again "
                "(the index is consistent: the last file's write was rolled back)")
    if primary in (_BUSY, _LOCKED):
        return f"{path}: locked by another process ({text}); try again when it has finished"
    if primary == _CANTOPEN:
        return f"{path}: cannot open ({text}): does its folder exist, and may this user write to it?"
    if path.exists() and quick_check(path) not in ("ok", None):
        return f"{path}: corrupt ({text}): {rebuild_hint(path)}"
    return f"{path}: SQLite error: {text}"


def _full(path: Path, conn: Any) -> bool:
    """No room left: the disk is (nearly) full, or the file is at its max_page_count."""
    try:
        if shutil.disk_usage(path.parent).free < FULL_BYTES:
            return True
        if conn is not None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            return bool(pages + FULL_PAGES >= conn.execute("PRAGMA max_page_count").fetchone()[0])
    except Exception:  # noqa: BLE001 - only a better message was at stake
        pass
    return False


def quick_check(path: Path) -> str | None:
    """'ok', the first problem SQLite's quick_check finds, or None if the file cannot be checked."""
    from mlx_jina.kb.connect import connect

    try:
        conn, _ = connect(path, readonly=True)
    except Exception:  # noqa: BLE001 - unopenable: the caller's own error says why
        return None
    try:
        return str(conn.execute("PRAGMA quick_check(1)").fetchone()[0])
    except Exception as exc:  # noqa: BLE001 - the check itself tripping on the damage is an answer
        return str(exc)
    finally:
        conn.close()


def health(path: Path) -> str:
    """`mlx-jina doctor`'s line for the database: ok / missing / not a mlx-jina database / corrupt / read-only."""
    from mlx_jina.kb.store import Store

    if not path.exists():
        return "missing: build it with `mlx-jina index FOLDER`"
    try:
        with Store(path, readonly=True) as store, store.errors():
            files = store.stats()["files"]
    except MlxJinaError as exc:
        return str(exc).removeprefix(f"{path}: ")
    state = quick_check(path)
    if state != "ok":
        return f"corrupt ({state}): {rebuild_hint(path)}"
    return f"ok ({files} files)" + ("" if writable(path) else "; read-only: status and search only")
