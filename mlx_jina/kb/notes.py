"""Reading back an indexed note, by its path: what an agent does after a search hit.

Only files the index holds are ever read, found by their stored absolute path or by their path
relative to the folder they were indexed under, so a caller cannot reach any other file (a path
is looked up, never joined: `..` leads nowhere). The text is the one the index was built from (PDF and HTML
as extracted), so a hit's line numbers point at the same lines.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlx_jina.errors import InputError, NoteNotFound, UnreadableFile
from mlx_jina.ingest import read_document

MAX_LINES = 2000  # most lines one read returns: keeps an agent's context (and a response) bounded


@dataclass(frozen=True)
class NoteText:
    """Lines from_line..to_line (1-based, inclusive) of an indexed note."""

    path: str
    rel: str
    kind: str
    from_line: int
    to_line: int
    total_lines: int
    text: str
    changed_since_indexed: bool  # the file's size or mtime differ from the indexed one's

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_note(conn: Any, path: str) -> tuple[str, str, str, int, float]:
    """(path, rel, kind, size, mtime) of the indexed note `path` names: its absolute path, or its
    path relative to the folder it was indexed under. NoteNotFound otherwise."""
    if not isinstance(path, str) or not path.strip():
        raise InputError("path is empty: give a note's path as search results show it")
    columns = "SELECT path, rel, kind, size, mtime FROM documents"
    given = Path(path).expanduser()
    if given.is_absolute():
        row = conn.execute(f"{columns} WHERE path = ?", (os.path.normpath(given),)).fetchone()
        if row is None:  # e.g. /tmp vs /private/tmp on macOS: the index stores resolved paths
            row = conn.execute(f"{columns} WHERE path = ?", (str(given.resolve()),)).fetchone()
        if row is None:
            raise NoteNotFound(f"{path} is not a note in this index; search first and pass a path from its results")
        return row
    rel = posixpath.normpath(path.replace("\\", "/"))
    rows = conn.execute(f"{columns} WHERE rel = ?", (rel,)).fetchall()
    if not rows:
        raise NoteNotFound(f"{path!r} is not a note in this index (paths are relative to an indexed folder, "
                           "e.g. 'work/plan.md'); search first and pass a path from its results")
    if len(rows) > 1:
        raise InputError(f"{path!r} is in more than one indexed folder: {', '.join(r[0] for r in rows)}; "
                         "pass one of these absolute paths")
    return rows[0]


def read_note(conn: Any, path: str, *, from_line: int = 1, max_lines: int = 200) -> NoteText:
    """Lines of an indexed note; see the module docstring for which paths are allowed."""
    for name, value, low, high in (("from_line", from_line, 1, None), ("max_lines", max_lines, 1, MAX_LINES)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
            raise InputError(f"{name} must be an integer from {low}{f' to {high}' if high else ''}, not {value!r}")
    stored, rel, kind, size, mtime = find_note(conn, path)
    file = Path(stored)
    try:
        stat = file.stat()
        lines = read_document(file).text.splitlines()
    except (UnreadableFile, OSError) as exc:
        reason = exc.reason if isinstance(exc, UnreadableFile) else str(exc)
        raise NoteNotFound(f"{stored} is indexed but cannot be read now ({reason}); "
                           "re-run `mlx-jina index` on its folder") from None
    if from_line > max(len(lines), 1):
        raise InputError(f"from_line={from_line} is past the end of {rel} ({len(lines)} lines)")
    chosen = lines[from_line - 1: from_line - 1 + max_lines]
    return NoteText(path=stored, rel=rel, kind=kind, from_line=from_line, to_line=from_line + len(chosen) - 1,
                    total_lines=len(lines), text="\n".join(chosen),
                    changed_since_indexed=(stat.st_size, stat.st_mtime) != (size, mtime))


def indexed_folders(conn: Any) -> list[dict[str, Any]]:
    """Each folder notes were indexed under, with its number of files."""
    rows = conn.execute("SELECT root, count(*) FROM documents GROUP BY root ORDER BY root").fetchall()
    return [{"folder": root, "files": files} for root, files in rows]
