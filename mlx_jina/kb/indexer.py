"""Bring the index in step with a folder, touching only what changed.

Per file: unchanged size+mtime -> nothing read; else the bytes' sha256 decides. A new path whose
hash equals a vanished path's is a rename: the row moves, nothing is embedded. Changed files are
re-chunked; chunks whose exact text is already stored (an edit elsewhere in the file, a copy) reuse
their vectors. With a local model, each new chunk is tokenized once: while chunking when its final
length check needs a count (it counts the text as the model will see it), else by a later stage,
and those ids are what the encoder gets. Reading + chunking, the stored-vector lookup + the
remaining tokenizing, embedding and writing overlap (pipeline.py); embedding happens *before* a
batch's write transaction, so the write lock is held for milliseconds, and each batch of files is
written in one transaction. A killed run leaves every file either fully old or fully new, and the
next run picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlx_jina.errors import WouldEmptyIndexError
from mlx_jina.ingest import (
    DEFAULT_MAX_BYTES,
    FileEntry,
    Skipped,
    UnreadableFile,
    chunk_document,
    count_bound,
    read_bytes,
    read_document,
    scan,
)
from mlx_jina.kb import vectors
from mlx_jina.kb.paths import printable
from mlx_jina.kb.pipeline import Writer, ahead
from mlx_jina.kb.store import NewChunk, Store, StoredDoc
from mlx_jina.remote import RemoteEmbedder

if TYPE_CHECKING:
    from mlx_jina.embedder import Embedder

BATCH_CHUNKS = 64  # chunks embedded per forward batch (across files)
Known = dict[bytes, tuple[bytes, bytes]]  # (bits, rescore) vectors by chunk text hash


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
        """For JSON (file names as in Hit.as_dict)."""
        skipped = [{key: printable(text) for key, text in item.items()} for item in self.skipped]
        return asdict(self) | {"skipped": skipped, "skipped_count": len(self.skipped)}


@dataclass
class _Pending:
    entry: FileEntry
    content_hash: bytes
    stored: StoredDoc | None
    chunks: list[Any] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)  # sha256 of each chunk's text
    ids: list[list[int] | None] = field(default_factory=list)  # model input of each chunk, if made already
    kind: str = ""
    language: str | None = None


class Indexer:
    def __init__(self, store: Store, embedder: Embedder | RemoteEmbedder, dimensions: int, *, passage_task: str,
                 max_tokens: int = 400, overlap_tokens: int = 48, batch_chunks: int = BATCH_CHUNKS) -> None:
        self.store = store
        self.embedder = embedder
        self.dimensions = dimensions
        self.passage_task = passage_task
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.batch_chunks = batch_chunks

    def sync(self, root: Path, *, include: Iterable[str] = (), exclude: Iterable[str] = (),
             max_bytes: int = DEFAULT_MAX_BYTES, remove_missing: bool = True, progress: bool = False,
             ignore: Iterable[Path] = (), follow_links: bool = False, allow_empty: bool = False) -> IndexReport:
        """Index `root`; with remove_missing, stored files under it that the scan no longer yields
        (deleted, now excluded, unreadable) are removed. A folder that is missing or has nothing
        to index while the index holds files from it (an unmounted drive) raises
        WouldEmptyIndexError, unless allow_empty says to remove them."""
        root = Path(root).expanduser().resolve()
        ignored = {str(p) for p in ignore}
        report = IndexReport()
        stored = self.store.documents_under(root)
        if remove_missing and stored and not root.is_dir():
            if not allow_empty:
                raise WouldEmptyIndexError(
                    f"{printable(str(root))} is missing (an unmounted drive or a moved folder?); the index keeps its "
                    f"{len(stored)} files from it. To remove them, index it again with --allow-empty.")
            return self._remove_all(stored.values(), report)
        present: set[str] = set()
        pending: list[_Pending] = []
        items = scan(root, include=tuple(include), exclude=tuple(exclude), max_bytes=max_bytes,
                     follow_links=follow_links)
        for item in items:
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
                digest = hashlib.sha256(read_bytes(item.path)).digest()
            except UnreadableFile as exc:
                report.skipped.append({"path": item.rel, "reason": exc.reason})
                continue
            present.add(str(item.path))
            if old and old.content_hash == digest:
                self.store.touch_document(old.id, size=item.size, mtime=item.mtime)
                report.unchanged += 1
            else:
                pending.append(_Pending(item, digest, old))
        if remove_missing and stored and not present and not allow_empty:
            raise WouldEmptyIndexError(
                f"{printable(str(root))} has no files to index now (an unmounted drive, or permissions?), but the "
                f"index holds {len(stored)} files from it; nothing was removed. To remove them, index it again "
                "with --allow-empty.")
        moved: set[int] = set()
        pending = self._moves(root, pending, [d for p, d in stored.items() if p not in present], moved, report)
        self._write_all(root, pending, present, report, progress)
        if remove_missing:
            self._remove_all([d for d in stored.values() if d.path not in present and d.id not in moved], report)
        else:
            self.store.mark_indexed()
        return report

    def _remove_all(self, docs: Iterable[StoredDoc], report: IndexReport) -> IndexReport:
        for doc in docs:
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
        """Four stages overlap: reading + chunking (a thread, one batch ahead), the stored-vector
        lookup + tokenizing what chunking did not (a thread, one batch ahead), embedding (this
        thread) and SQLite writes (a thread, each batch of files in one transaction)."""
        from tqdm import tqdm

        bar = _Progress(tqdm(total=len(pending), unit="file", desc="indexing", disable=not progress, leave=False))
        writer: Writer[tuple[list[_Pending], Known]] = Writer(
            lambda items: self._write_batches(root, items, report, bar))
        try:
            batches = ahead(self._batches(pending, present, report, bar))
            for batch, known in ahead(self._looked_up(batches), name="mlx-jina-lookup"):
                writer.put((batch, self._embed(batch, known, report)))
        finally:
            writer.close()
            bar.bar.close()

    def _batches(self, pending: list[_Pending], present: set[str], report: IndexReport,
                 bar: _Progress) -> Iterator[list[_Pending]]:
        """Files read and chunked, grouped into batches of about `batch_chunks` chunks."""
        batch: list[_Pending] = []
        size = 0
        shared: dict[str, int] = {}  # counts every file's chunking reuses (whitespace)
        count_chunk, bound_chunk = self._model_counter()
        for p in pending:
            try:
                doc = read_document(p.entry.path)
            except UnreadableFile as exc:
                report.skipped.append({"path": p.entry.rel, "reason": exc.reason})
                present.discard(str(p.entry.path))
                bar.advance(1)
                continue
            p.kind, p.language = doc.kind, doc.language
            ids_of: dict[str, list[int]] = {}
            chunks = chunk_document(doc, title=printable(p.entry.rel), count_tokens=self.embedder.count_tokens,
                                    count_chunk=partial(count_chunk, ids_of), bound_chunk=bound_chunk,
                                    max_tokens=self.max_tokens, overlap_tokens=self.overlap_tokens, shared=shared)
            p.chunks = [c for c in chunks if c.text.strip()]
            p.hashes = [_sha(c.text) for c in p.chunks]
            p.ids = [ids_of.get(c.text) for c in p.chunks]
            batch.append(p)
            size += len(p.chunks)
            if size >= self.batch_chunks:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _model_counter(self) -> tuple[Callable[[dict[str, list[int]], Sequence[str]], list[int]],
                                      Callable[[str], float]]:
        """The chunker's final check: a chunk's text counted as the tokens it adds to the model's
        task prompt, and a bound on that count from the length of prompt + text (less the prompt's
        own tokens), within which it is not counted.
        A local model tokenizes prompt + text when it counts, once, keeping the ids in `ids_of` for
        the encoder; a remote engine tokenizes for itself, so only the count is made (the same
        count: a remote index has exactly the chunks of a local one)."""
        embedder, task = self.embedder, self.passage_task
        prompt = embedder.tasks[task].prompt
        base, added = embedder.count_tokens([prompt, ""])

        def bound(text: str) -> float:
            return count_bound(prompt + text, added) - base

        if isinstance(embedder, RemoteEmbedder):
            def count_remote(ids_of: dict[str, list[int]], texts: Sequence[str]) -> list[int]:
                return [n - base for n in embedder.count_tokens([prompt + t for t in texts])]
            return count_remote, bound

        def count(ids_of: dict[str, list[int]], texts: Sequence[str]) -> list[int]:
            rows = embedder.tokenize(texts, [task] * len(texts), truncate=True)
            ids_of.update(zip(texts, rows))
            return [len(row) - base for row in rows]
        return count, bound

    def _looked_up(self, batches: Iterable[list[_Pending]]) -> Iterator[tuple[list[_Pending], Known]]:
        """Each batch with the stored vectors of its chunks' texts; a local model's ids are made
        here for the other chunks that chunking did not count (one call a batch)."""
        embedder, task = self.embedder, self.passage_task
        for batch in batches:
            known = self.store.vectors_for([h for p in batch for h in p.hashes])
            if not isinstance(embedder, RemoteEmbedder):
                todo = [(p, i) for p in batch for i, h in enumerate(p.hashes) if p.ids[i] is None and h not in known]
                if todo:
                    rows = embedder.tokenize([p.chunks[i].text for p, i in todo], [task] * len(todo), truncate=True)
                    for (p, i), row in zip(todo, rows):
                        p.ids[i] = row
            yield batch, known

    def _embed(self, batch: list[_Pending], known: Known, report: IndexReport) -> Known:
        """Vectors for every chunk of the batch: stored ones reused, the rest embedded now (from the
        ids made already, when every one has them)."""
        hashes = [h for p in batch for h in p.hashes]
        todo = {h: (c.text, row) for p in batch for c, h, row in zip(p.chunks, p.hashes, p.ids) if h not in known}
        if todo:
            texts = [text for text, _ in todo.values()]
            rows = [row for _, row in todo.values() if row is not None]
            embedder = self.embedder
            if not isinstance(embedder, RemoteEmbedder) and len(rows) == len(texts):
                floats = embedder.encode(texts, task=self.passage_task, dimensions=self.dimensions, truncate=True,
                                         ids=rows)
            else:
                floats = embedder.encode(texts, task=self.passage_task, dimensions=self.dimensions, truncate=True)
            bits, int8 = vectors.encode(floats)
            known |= dict(zip(todo, zip(bits, int8)))
        report.chunks_embedded += len(todo)
        report.chunks_reused += len(hashes) - len(todo)
        return known

    def _write_batches(self, root: Path, items: list[tuple[list[_Pending], Known]],
                       report: IndexReport, bar: _Progress) -> None:
        """Write every file of the queued batches in one transaction (each file whole, or none)."""
        self.store.write_documents([
            {"path": str(p.entry.path), "root": str(root), "rel": p.entry.rel, "kind": p.kind, "language": p.language,
             "content_hash": p.content_hash, "size": p.entry.size, "mtime": p.entry.mtime,
             "chunks": [NewChunk(i, c.heading, c.start_line, c.end_line, c.text, c.body, h, *known[h])
                        for i, (c, h) in enumerate(zip(p.chunks, p.hashes))]}
            for batch, known in items for p in batch])
        for batch, _ in items:
            for p in batch:
                if p.stored is None:
                    report.added += 1
                else:
                    report.changed += 1
            bar.advance(len(batch), embedded=report.chunks_embedded)


class _Progress:
    """The files bar, advanced from the reading and the writing thread."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self._lock = threading.Lock()

    def advance(self, files: int, **postfix: Any) -> None:
        with self._lock:
            self.bar.update(files)
            if postfix:
                self.bar.set_postfix(**postfix)


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()

