"""Bring the index in step with a folder, touching only what changed.

Per file: unchanged size+mtime -> nothing read; else the bytes' sha256 decides. A new path whose
hash equals a vanished path's is a rename: the row moves, nothing is embedded. Changed files are
re-chunked; chunks whose exact text is already stored (an edit elsewhere in the file, a copy) reuse
their vectors. Embedding happens for a batch of files *before* their write transactions, so the
write lock is held for milliseconds; each file is then written in one transaction. A killed run
leaves every file either fully old or fully new, and the next run picks up where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlx_jina.ingest import (
    DEFAULT_MAX_BYTES,
    FileEntry,
    Skipped,
    UnreadableFile,
    chunk_document,
    read_bytes,
    read_document,
    scan,
)
from mlx_jina.kb import vectors
from mlx_jina.kb.store import NewChunk, Store, StoredDoc

if TYPE_CHECKING:
    from mlx_jina.embedder import Embedder

BATCH_CHUNKS = 64  # chunks embedded per forward batch (across files)


@dataclass
class IndexReport:
    """What one run did; `index --json` prints it."""

    seen: int = 0
    added: int = 0
    changed: int = 0
    renamed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"skipped_count": len(self.skipped)}


@dataclass
class _Pending:
    entry: FileEntry
    content_hash: str
    stored: StoredDoc | None
    chunks: list[Any] = field(default_factory=list)
    kind: str = ""
    language: str | None = None


class Indexer:
    def __init__(self, store: Store, embedder: Embedder, dimensions: int, *, passage_task: str,
                 max_tokens: int = 400, overlap_tokens: int = 48) -> None:
        self.store = store
        self.embedder = embedder
        self.dimensions = dimensions
        self.passage_task = passage_task
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def sync(self, root: Path, *, include: Iterable[str] = (), exclude: Iterable[str] = (),
             max_bytes: int = DEFAULT_MAX_BYTES, remove_missing: bool = True, progress: bool = False,
             ignore: Iterable[Path] = ()) -> IndexReport:
        """Index `root`; with remove_missing, stored files under it that the scan no longer yields
        (deleted, now excluded, unreadable) are removed."""
        root = Path(root).expanduser().resolve()
        ignored = {str(p) for p in ignore}
        report = IndexReport()
        stored = self.store.documents_under(root)
        present: set[str] = set()
        pending: list[_Pending] = []
        for item in scan(root, include=tuple(include), exclude=tuple(exclude), max_bytes=max_bytes):
            if isinstance(item, Skipped):
                report.skipped.append({"path": item.rel, "reason": item.reason})
                continue
            if str(item.path) in ignored:
                continue
            report.seen += 1
            old = stored.get(str(item.path))
            if old and old.size == item.size and old.mtime == item.mtime:
                present.add(str(item.path))
                report.unchanged += 1
                continue
            try:
                digest = hashlib.sha256(read_bytes(item.path)).hexdigest()
            except UnreadableFile as exc:
                report.skipped.append({"path": item.rel, "reason": exc.reason})
                continue
            present.add(str(item.path))
            if old and old.content_hash == digest:
                self.store.touch_document(old.id, size=item.size, mtime=item.mtime)
                report.unchanged += 1
            else:
                pending.append(_Pending(item, digest, old))
        moved: set[int] = set()
        pending = self._moves(root, pending, [d for p, d in stored.items() if p not in present], moved, report)
        self._write_all(root, pending, present, report, progress)
        if remove_missing:
            for doc in stored.values():
                if doc.path not in present and doc.id not in moved:
                    self.store.remove_document(doc.id)
                    report.removed += 1
        self.store.mark_indexed()
        return report

    def _moves(self, root: Path, pending: list[_Pending], vanished: list[StoredDoc], moved: set[int],
               report: IndexReport) -> list[_Pending]:
        """Renames: a new path with the bytes of a vanished one takes over its row and vectors."""
        by_hash = {d.content_hash: d for d in vanished}
        rest = []
        for p in pending:
            old = by_hash.pop(p.content_hash, None) if p.stored is None else None
            if old is None:
                rest.append(p)
                continue
            self.store.move_document(old.id, path=str(p.entry.path), root=str(root), rel=p.entry.rel,
                                     size=p.entry.size, mtime=p.entry.mtime)
            moved.add(old.id)
            report.renamed += 1
        return rest

    def _write_all(self, root: Path, pending: list[_Pending], present: set[str], report: IndexReport,
                   progress: bool) -> None:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), unit="file", desc="indexing", disable=not progress, leave=False)
        batch: list[_Pending] = []
        size = 0
        for p in pending:
            try:
                doc = read_document(p.entry.path)
            except UnreadableFile as exc:
                report.skipped.append({"path": p.entry.rel, "reason": exc.reason})
                present.discard(str(p.entry.path))
                bar.update(1)
                continue
            p.kind, p.language = doc.kind, doc.language
            p.chunks = [c for c in chunk_document(doc, title=p.entry.rel, count_tokens=self._count,
                                                  max_tokens=self.max_tokens, overlap_tokens=self.overlap_tokens)
                        if c.text.strip()]
            batch.append(p)
            size += len(p.chunks)
            if size >= BATCH_CHUNKS:
                self._write_batch(root, batch, report, bar)
                batch, size = [], 0
        self._write_batch(root, batch, report, bar)
        bar.close()

    def _count(self, text: str) -> int:
        return self.embedder.count_tokens([text])[0]

    def _write_batch(self, root: Path, batch: list[_Pending], report: IndexReport, bar: Any) -> None:
        """Embed what the batch needs (outside any transaction), then write each file atomically."""
        hashes = {id(c): _sha(c.text) for p in batch for c in p.chunks}
        known = self.store.vectors_for(list(hashes.values()))
        todo = {hashes[id(c)]: c.text for p in batch for c in p.chunks if hashes[id(c)] not in known}
        if todo:
            floats = self.embedder.encode(list(todo.values()), task=self.passage_task,
                                          dimensions=self.dimensions, truncate=True)
            bits, int8 = vectors.encode(floats)
            known |= dict(zip(todo, zip(bits, int8)))
        report.chunks_embedded += len(todo)
        for p in batch:
            rows = [NewChunk(i, c.heading, c.start_line, c.end_line, c.text, c.body, hashes[id(c)],
                             *known[hashes[id(c)]]) for i, c in enumerate(p.chunks)]
            self.store.write_document(path=str(p.entry.path), root=str(root), rel=p.entry.rel, kind=p.kind,
                                      language=p.language, content_hash=p.content_hash, size=p.entry.size,
                                      mtime=p.entry.mtime, chunks=rows)
            report.chunks_reused += sum(1 for c in p.chunks if hashes[id(c)] not in todo)
            if p.stored is None:
                report.added += 1
            else:
                report.changed += 1
            bar.update(1)
            bar.set_postfix(embedded=report.chunks_embedded)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

