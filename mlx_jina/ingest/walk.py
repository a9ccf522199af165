"""Find the files of a notes folder worth indexing, and say why the others were left out.

Silently skipped (never worth a report line): names starting with '.', and the noise
folders in NOISE_DIRS or any folder holding a `pyvenv.cfg` (a virtualenv). Everything else
that is not indexed comes back as a Skipped with a human-readable reason. A folder that is
ignored or excluded is reported once and not entered. Output order is deterministic.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from mlx_jina.errors import InputError
from mlx_jina.ingest.readers import SNIFF_BYTES, bom_encoding, kind_of, unreadable_reason

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
NOISE_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "bower_components"})
BINARY_EXTS = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .webp .tif .tiff .heic .psd .raw .zip .gz .tgz .bz2 .xz .zst "
    ".7z .rar .tar .jar .war .exe .dll .so .dylib .o .a .lib .bin .class .pyc .pyo .whl .mp3 .mp4 "
    ".m4a .wav .flac .ogg .mov .avi .mkv .webm .woff .woff2 .ttf .otf .eot .sqlite .db .doc .docx "
    ".xls .xlsx .ppt .pptx .odt .ods .odp .key .numbers .pages .dmg .iso .img .npy .npz "
    ".safetensors .pt .pth .onnx .gguf .parquet .epub".split()
)


@dataclass(frozen=True)
class FileEntry:
    """A file to read: absolute path, POSIX path relative to the scanned root, size, mtime."""

    path: Path
    rel: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Skipped:
    """A file or folder left out; `rel` ends with '/' for folders."""

    rel: str
    reason: str


@dataclass(frozen=True)
class _Ignore:
    """One .gitignore: its patterns apply to paths relative to the folder it lives in."""

    base: str  # folder of the .gitignore relative to the root, "" or "a/b/"
    spec: pathspec.GitIgnoreSpec


def scan(
    root: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    max_bytes: int = DEFAULT_MAX_BYTES,
    follow_links: bool = False,
) -> Iterator[FileEntry | Skipped]:
    """Walk `root`, honouring .gitignore files (root and nested) and gitignore-style globs.

    include: when given, only files matching one of these are indexed.
    exclude: files and folders matching any of these are never indexed.
    follow_links: also follow symlinks that lead outside `root` (by default they are reported).
    A file reachable by several paths (symlinks, hard links) is yielded once, real paths first.
    Raises InputError when root is not a folder (an unreadable root yields Skipped(".")).
    """
    check_max_bytes(max_bytes)
    root = Path(root).absolute()
    if not root.is_dir():
        raise InputError(f"not a folder: {root}")
    walker = _Walker(root, list(include), list(exclude), max_bytes, follow_links)
    yield from walker.drive(walker.walk_dir(root, "", [], (_identity(root),)))
    while walker.linked:  # symlinks last, so a real path is never the one reported as a duplicate
        yield from walker.drive(walker.linked.pop(0))


def check_max_bytes(max_bytes: object) -> None:
    """A size limit must be a positive integer: 0 or -5 would skip every file (and so empty the index)."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise InputError(f"max_bytes must be a positive number of bytes, not {max_bytes!r}")


@dataclass(frozen=True)
class _Folder:
    """walk_dir's request to enter a sub-folder (the driver keeps the stack, so depth is unbounded)."""

    args: tuple[Any, ...]


class _Walker:
    def __init__(self, root: Path, include: list[str], exclude: list[str], max_bytes: int,
                 follow_links: bool) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.include = pathspec.GitIgnoreSpec.from_lines(include) if include else None
        self.exclude_patterns = exclude
        self.exclude = pathspec.GitIgnoreSpec.from_lines(exclude)
        self.max_bytes = max_bytes
        self.follow_links = follow_links
        self.seen_dirs: set[tuple[int, int]] = {_identity(root)}
        self.seen_files: dict[tuple[int, int], str] = {}
        self.linked: list[Iterator[FileEntry | Skipped | _Folder]] = []

    def drive(self, first: Iterator[FileEntry | Skipped | _Folder]) -> Iterator[FileEntry | Skipped]:
        """Depth-first over folders with an explicit stack: a 600-level tree is no recursion limit."""
        stack = [first]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, _Folder):
                stack.append(self.enter(*item.args))
            else:
                yield item

    def walk_dir(
        self, folder: Path, rel: str, ignores: list[_Ignore], ancestors: tuple[tuple[int, int], ...]
    ) -> Iterator[FileEntry | Skipped | _Folder]:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield Skipped(rel or ".", unreadable_reason(e))
            return
        ignores = ignores + self._gitignore(folder, rel)
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            child_rel = rel + name
            try:
                st = os.stat(entry.path)
                is_link = entry.is_symlink()
            except FileNotFoundError:
                if _is_link(entry):
                    yield Skipped(child_rel, "broken symlink")
                continue  # vanished while scanning: nothing left to report
            except OSError as e:
                yield Skipped(child_rel, unreadable_reason(e))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_link and not self.follow_links and not self._inside(entry.path):
                yield Skipped(child_rel + ("/" if is_dir else ""), "symlink to outside the folder (not followed)")
            elif is_dir:
                args = (Path(entry.path), child_rel + "/", st, ignores, ancestors)
                if is_link:
                    self.linked.append(self.enter(*args))
                else:
                    yield _Folder(args)
            elif is_link:
                self.linked.append(self._linked_file(Path(entry.path), child_rel, st, ignores))
            else:
                yield self._file(Path(entry.path), child_rel, st, ignores)

    def enter(
        self, folder: Path, rel: str, st: os.stat_result, ignores: list[_Ignore],
        ancestors: tuple[tuple[int, int], ...],
    ) -> Iterator[FileEntry | Skipped | _Folder]:
        if folder.name in NOISE_DIRS or os.path.isfile(folder / "pyvenv.cfg"):  # isfile: False if unreadable
            return
        reason = self._filtered(rel, ignores)
        if reason:
            yield Skipped(rel, reason)
            return
        ident = (st.st_dev, st.st_ino)
        if ident in ancestors:
            yield Skipped(rel, "symlink loop")
            return
        if ident in self.seen_dirs:
            yield Skipped(rel, "already scanned through another symlink")
            return
        self.seen_dirs.add(ident)
        yield from self.walk_dir(folder, rel, ignores, ancestors + (ident,))

    def _linked_file(self, path: Path, rel: str, st: os.stat_result,
                     ignores: list[_Ignore]) -> Iterator[FileEntry | Skipped]:
        yield self._file(path, rel, st, ignores)  # lazily: real paths claim their file first

    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def _file(self, path: Path, rel: str, st: os.stat_result, ignores: list[_Ignore]) -> FileEntry | Skipped:
        reason = self._filtered(rel, ignores)
        if reason:
            return Skipped(rel, reason)
        if self.include is not None and not self.include.match_file(rel):
            return Skipped(rel, "not matched by include patterns")
        if not stat.S_ISREG(st.st_mode):
            return Skipped(rel, "not a regular file")
        kind = kind_of(path)
        if path.suffix.lower() in BINARY_EXTS:
            return Skipped(rel, "binary file")
        if kind is None:
            return Skipped(rel, f"unsupported file type '{path.suffix}'")
        if st.st_size > self.max_bytes:
            return Skipped(rel, f"larger than {_human(self.max_bytes)}")
        if kind != "pdf":  # PDFs are binary containers by design
            try:
                with open(path, "rb") as f:
                    head = f.read(SNIFF_BYTES)
            except OSError as e:
                return Skipped(rel, unreadable_reason(e))
            if b"\0" in head and bom_encoding(head) is None:
                return Skipped(rel, "binary file")
        ident = (st.st_dev, st.st_ino)
        if ident in self.seen_files:
            return Skipped(rel, f"same file as {self.seen_files[ident]}")
        self.seen_files[ident] = rel
        return FileEntry(path=path, rel=rel, size=st.st_size, mtime=st.st_mtime)

    def _filtered(self, rel: str, ignores: list[_Ignore]) -> str | None:
        """Reason a path (folders end with '/') is left out by .gitignore or exclude, else None."""
        ignored = False
        for ig in ignores:  # root first, deepest last: the deepest decisive pattern wins
            verdict = ig.spec.check_file(rel[len(ig.base):]).include
            if verdict is not None:
                ignored = verdict
        if ignored:
            return "ignored by .gitignore"
        hit = self.exclude.check_file(rel)
        if hit.include and hit.index is not None:
            return f"matched exclude '{self.exclude_patterns[hit.index]}'"
        return None

    def _gitignore(self, folder: Path, rel: str) -> list[_Ignore]:
        try:
            lines = (folder / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:  # absent (the usual case) or unreadable: no patterns from here
            return []
        return [_Ignore(rel, pathspec.GitIgnoreSpec.from_lines(lines))]


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _human(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"
