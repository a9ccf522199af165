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

import pathspec

from mlx_jina.errors import InputError
from mlx_jina.ingest.readers import SNIFF_BYTES, kind_of, unreadable_reason

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
) -> Iterator[FileEntry | Skipped]:
    """Walk `root`, honouring .gitignore files (root and nested) and gitignore-style globs.

    include: when given, only files matching one of these are indexed.
    exclude: files and folders matching any of these are never indexed.
    Raises InputError when root is not a folder (an unreadable root yields Skipped(".")).
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise InputError(f"not a folder: {root}")
    walker = _Walker(root, list(include), list(exclude), max_bytes)
    yield from walker.walk_dir(root, "", [], (_identity(root),))
    while walker.linked:  # symlinked folders last, so a real folder is never reported as a duplicate
        yield from walker.enter(*walker.linked.pop(0))


class _Walker:
    def __init__(self, root: Path, include: list[str], exclude: list[str], max_bytes: int) -> None:
        self.root = root
        self.include = pathspec.GitIgnoreSpec.from_lines(include) if include else None
        self.exclude_patterns = exclude
        self.exclude = pathspec.GitIgnoreSpec.from_lines(exclude)
        self.max_bytes = max_bytes
        self.seen_dirs: set[tuple[int, int]] = {_identity(root)}
        self.linked: list[tuple[Path, str, os.stat_result, list[_Ignore], tuple[tuple[int, int], ...]]] = []

    def walk_dir(
        self, folder: Path, rel: str, ignores: list[_Ignore], ancestors: tuple[tuple[int, int], ...]
    ) -> Iterator[FileEntry | Skipped]:
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
            except FileNotFoundError:
                if entry.is_symlink():
                    yield Skipped(child_rel, "broken symlink")
                continue  # vanished while scanning: nothing left to report
            except OSError as e:
                yield Skipped(child_rel, unreadable_reason(e))
                continue
            if stat.S_ISDIR(st.st_mode):
                args = (Path(entry.path), child_rel + "/", st, ignores, ancestors)
                if entry.is_symlink():
                    self.linked.append(args)
                else:
                    yield from self.enter(*args)
            else:
                yield self._file(Path(entry.path), child_rel, st, ignores)

    def enter(
        self, folder: Path, rel: str, st: os.stat_result, ignores: list[_Ignore],
        ancestors: tuple[tuple[int, int], ...],
    ) -> Iterator[FileEntry | Skipped]:
        if folder.name in NOISE_DIRS or (folder / "pyvenv.cfg").is_file():
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
            if b"\0" in head:
                return Skipped(rel, "binary file")
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


def _human(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"
