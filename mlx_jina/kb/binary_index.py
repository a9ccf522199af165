"""The in-process Hamming index: every chunk's sign bits in one word-major array, scanned by numpy.

A cache, never a source: SQLite holds the bits (`chunk_vectors.bits`), and every write that changes them
stores a new random `vectors_token` in `meta` in the same transaction. An index knows the token it
was built from; a search reads the token inside its read transaction and rebuilds (or reloads the
sidecar file) when it differs, so the index always matches the snapshot the search reads its
rescoring vectors and hits from. A writer killed mid-transaction leaves the old token and the old
rows; a sidecar is written to a temporary name and renamed, so it is whole or absent.

Layout (measured, bench/store.py kernels): codes are uint64 words stored word-major, [W, N], so a
block of rows is W contiguous runs; XOR + `np.bitwise_count` + a sum over the W axis per 16k-row
block was 1.2-1.6x faster than row-major [N, W] sums and 6x faster than per-byte counts. The n
nearest are picked from a histogram of distances (one bincount and two compares) rather than
`argpartition`, which is ~8x slower at 1M rows.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

BLOCK_ROWS = 1 << 14  # rows per scan block: the XOR and count temporaries stay in L2
#: Threads for one large scan, and the fewest blocks worth a thread (below ~130k rows one thread
#: is faster than handing work out).
SCAN_THREADS = min(4, os.cpu_count() or 1)
MIN_BLOCKS_PER_THREAD = 4
#: The n-th smallest distance is first guessed from every SAMPLE_STRIDE-th row (arrays of at
#: least SAMPLE_MIN sampled rows), aiming at SAMPLE_MARGIN x n (+ SAMPLE_SLACK sampled) rows.
SAMPLE_STRIDE = 16
SAMPLE_MIN = 4096
SAMPLE_MARGIN = 2
SAMPLE_SLACK = 8
#: Matryoshka funnel: the prefix scan keeps this many candidates per final candidate.
FUNNEL_FACTOR = 8
SIDECAR_SUFFIX = "-codes.npz"
_WORD_BITS = 64
T = TypeVar("T")


@dataclass(frozen=True)
class BinaryIndex:
    """chunk_ids[i] and doc_ids[i] own column i of `codes` (uint64 [W, N], bit j of the vector is
    bit j % 64 of word j // 64: sqlite-vec's LSB-first bytes read as little-endian words)."""

    token: str
    chunk_ids: np.ndarray
    doc_ids: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @property
    def bits(self) -> int:
        return self.codes.shape[0] * _WORD_BITS

    @classmethod
    def from_rows(cls, token: str, rows: list[tuple[int, int, bytes]]) -> BinaryIndex:
        """(chunk_id, doc_id, sign bits) rows, all as long -> an index; bits are zero-padded to whole words."""
        nbytes = len(rows[0][2]) if rows else 0
        words = -(-nbytes // 8)
        packed = np.zeros((len(rows), words * 8), dtype=np.uint8)
        if rows:
            packed[:, :nbytes] = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.uint8).reshape(len(rows), nbytes)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        docs = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        codes = np.ascontiguousarray(packed.view("<u8").T)
        return cls(token, ids, docs, codes)

    def query_words(self, query_bits: bytes) -> np.ndarray:
        padded = np.zeros(self.codes.shape[0] * 8, dtype=np.uint8)
        padded[: len(query_bits)] = np.frombuffer(query_bits, dtype=np.uint8)
        return padded.view("<u8")

    def distances(self, query: np.ndarray, words: int | None = None, columns: np.ndarray | None = None,
                  start: int = 0) -> np.ndarray:
        """Hamming distance (uint16) from `query` words to every row (or to `columns`), over words
        `start` up to `words` (a Matryoshka prefix, or its rest) or all of them. Large scans are split
        across SCAN_THREADS threads (numpy releases the GIL in its loops), each over whole blocks."""
        codes = self.codes[start: words or self.codes.shape[0]]
        if columns is not None:
            codes = codes[:, columns]
        out = np.empty(codes.shape[1], dtype=np.uint16)
        q = query[start: start + codes.shape[0], None]
        _each_span(codes.shape[1], lambda begin, end: _scan(codes, q, out, begin, end))
        return out

    def nearest(self, query_bits: bytes, n: int, allowed_docs: np.ndarray | None = None,
                prefix_bits: int | None = None, *, query: np.ndarray | None = None,
                keep: int | None = None) -> np.ndarray:
        """Chunk ids of the (up to) n rows nearest in Hamming distance, nearest first; only rows
        of `allowed_docs` if given. prefix_bits: Matryoshka funnel (scan that many leading bits,
        keep FUNNEL_FACTOR x n, then rank those by the full code). query + keep: then rank the n
        by the float query's dot product with their +-1 sign vectors (the query keeps its
        magnitudes, so this orders candidates far better than Hamming does) and return the best
        `keep`, best first: fewer int8 rows to read for the same recall (benchmarks/store.py)."""
        if not len(self) or n < 1:
            return np.zeros(0, dtype=np.int64)
        words = self.codes.shape[0]
        query_words = self.query_words(query_bits)
        scanned = min(words, (prefix_bits or 0) // _WORD_BITS) or words
        allowed = None if allowed_docs is None else _member(self.doc_ids, allowed_docs)
        funnel = scanned < words
        pick, near = self._scan_smallest(query_words, scanned, FUNNEL_FACTOR * n if funnel else n, allowed)
        if funnel:  # the full distance: the prefix's, plus the rest of the code's (gathered for these rows only)
            near = near + self.distances(query_words, columns=pick, start=scanned)
            shortlist = _smallest(near, n, self.bits + 1)
            pick, near = pick[shortlist], near[shortlist]
        if query is not None and keep is not None and 0 < keep < len(pick):
            scores = _sign_scores(query, self.codes[:, pick])
            best = np.argpartition(-scores, keep - 1)[:keep]
            return self.chunk_ids[pick[best[np.argsort(-scores[best], kind="stable")]]]
        return self.chunk_ids[pick[np.argsort(near, kind="stable")]]

    def _scan_smallest(self, query: np.ndarray, words: int, n: int,
                       allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(positions, distances) of the n smallest distances over the first `words` words among
        `allowed` rows, unordered. The scan and the pass that lists the rows under the cut run on
        every scan thread, each over its own span."""
        codes, q, limit = self.codes[:words], query[:words, None], words * _WORD_BITS + 1
        dist = np.empty(codes.shape[1], dtype=np.uint16)

        def scan(start: int, stop: int) -> None:
            _scan(codes, q, dist, start, stop)
            if allowed is not None:
                dist[start:stop][~allowed[start:stop]] = limit

        def under(cut: int) -> np.ndarray:
            spans = _each_span(len(dist), lambda start, stop: np.flatnonzero(dist[start:stop] <= cut) + start)
            return np.concatenate(spans)

        _each_span(len(dist), scan)
        pick = _smallest(dist, n, limit, under)
        return pick, dist[pick]

    # ---- the sidecar file ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write atomically (temporary file + rename): a reader sees the old file or the new one."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, token=np.array(self.token), chunk_ids=self.chunk_ids, doc_ids=self.doc_ids,
                         codes=self.codes)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, token: str) -> BinaryIndex | None:
        """The sidecar if it exists, is well formed and was built from `token`; else None."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["token"]) != token:
                    return None
                index = cls(token, data["chunk_ids"], data["doc_ids"], data["codes"])
        except (OSError, ValueError, KeyError, EOFError):
            return None
        n = len(index.chunk_ids)
        ok = (index.doc_ids.shape == (n,) and index.codes.ndim == 2 and index.codes.shape[1] == n
              and index.codes.dtype == np.uint64 and index.chunk_ids.dtype == np.int64)
        return index if ok else None


def _member(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """values in allowed, as a gather from a dense table (ids are small positive integers)."""
    top = int(max(values.max(initial=0), allowed.max(initial=0))) + 1
    table = np.zeros(top, dtype=bool)
    table[allowed] = True
    return table[values]


def _smallest(dist: np.ndarray, n: int, limit: int, under: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """Positions of the n smallest distances below `limit` (ties broken by position), unordered.
    under(cut): positions of the distances <= cut, ascending (it may be computed in parallel).

    A large array's cut is guessed from every SAMPLE_STRIDE-th distance, generously (about
    SAMPLE_MARGIN x n rows under it): if at least n rows are under the guess, they hold the n
    smallest and the exact cut is found among them, so the result is exact either way. That saves
    a histogram of every row (bincount: ~1.3 ms of a 1M-row query, against ~0.1 ms here)."""
    if under is None:
        def under(cut: int) -> np.ndarray:
            return np.flatnonzero(dist <= cut)
    if len(dist) >= SAMPLE_STRIDE * SAMPLE_MIN:
        sampled = np.cumsum(np.bincount(dist[::SAMPLE_STRIDE], minlength=limit + 1)[:limit])
        guess = int(np.searchsorted(sampled, SAMPLE_MARGIN * n / SAMPLE_STRIDE + SAMPLE_SLACK))
        if guess < limit:
            within = under(guess)
            if len(within) >= n:
                return _smallest_of(dist, within, n)
    hist = np.bincount(dist, minlength=limit + 1)[:limit]
    total = np.cumsum(hist)
    if total[-1] <= n:
        return np.flatnonzero(dist < limit)
    return _smallest_of(dist, under(int(np.searchsorted(total, n))), n)


def _smallest_of(dist: np.ndarray, within: np.ndarray, n: int) -> np.ndarray:
    """The n smallest of dist[within] (ascending positions holding at least n rows, and every row
    of a smaller distance than the n-th), ties broken by position."""
    near = dist[within]
    cut = int(np.searchsorted(np.cumsum(np.bincount(near)), n))  # distance of the n-th nearest
    below = within[near < cut]
    ties = within[near == cut][: n - len(below)]
    return np.concatenate([below, ties])


def _scan(codes: np.ndarray, q: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
    """out[start:stop] = Hamming distances of those rows, block by block (temporaries stay in L2)."""
    w = codes.shape[0]
    xor = np.empty((w, BLOCK_ROWS), dtype=np.uint64)
    count = np.empty((w, BLOCK_ROWS), dtype=np.uint8)
    for begin in range(start, stop, BLOCK_ROWS):
        end = min(stop, begin + BLOCK_ROWS)
        size = end - begin
        np.bitwise_xor(codes[:, begin:end], q, out=xor[:, :size])
        np.bitwise_count(xor[:, :size], out=count[:, :size])
        np.sum(count[:, :size], axis=0, dtype=np.uint16, out=out[begin:end])


def _each_span(rows: int, work: Callable[[int, int], T]) -> list[T]:
    """work(start, stop) over whole-block spans of `rows`, on up to SCAN_THREADS threads (one span
    when there are too few blocks to be worth handing out)."""
    blocks = -(-rows // BLOCK_ROWS)
    parts = min(SCAN_THREADS, blocks // MIN_BLOCKS_PER_THREAD) or 1
    bounds = [BLOCK_ROWS * (blocks * i // parts) for i in range(parts)] + [rows]
    if parts == 1:
        return [work(0, rows)]
    return list(_pool().map(work, bounds[:-1], bounds[1:]))


#: Row b: the 8 bits of byte value b, LSB first (sqlite-vec's bit order), as 0/1 floats.
_BYTE_BITS = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.float32)


def _sign_scores(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The float query's dot product with each column's +-1 sign vector, up to the same offset for
    every column (the sum of the query's components over the set bits: q.s = 2 * that - sum(q)),
    by one table lookup per code byte."""
    q = np.zeros(codes.shape[0] * _WORD_BITS, dtype=np.float32)
    q[: len(query)] = query
    # byte j's 256 sums at 256 * j; einsum, not `@`: BLAS threads cost milliseconds on a busy CPU (vectors.rescore)
    table = np.einsum("jk,bk->jb", q.reshape(-1, 8), _BYTE_BITS).ravel()
    by = np.ascontiguousarray(codes.T).view(np.uint8).astype(np.int32)
    by += 256 * np.arange(by.shape[1], dtype=np.int32)
    return np.take(table, by).sum(axis=1)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(SCAN_THREADS, thread_name_prefix="hamming-scan")


class IndexCache:
    """The one BinaryIndex of a database file, kept in step with SQLite's `vectors_token`."""

    def __init__(self, sidecar: Path | None) -> None:
        self.sidecar = sidecar
        self.index: BinaryIndex | None = None

    def current(self, conn: Any, token: str) -> BinaryIndex:
        """The index for `token`, read in the caller's read transaction: memory, else the sidecar,
        else rebuilt from SQLite (and the sidecar rewritten, best effort)."""
        if self.index is not None and self.index.token == token:
            return self.index
        index = BinaryIndex.load(self.sidecar, token) if self.sidecar else None
        if index is None:
            rows = conn.execute("SELECT chunk_id, doc_id, bits FROM chunk_vectors ORDER BY chunk_id").fetchall()
            index = BinaryIndex.from_rows(token, rows)
            if self.sidecar:
                try:
                    index.save(self.sidecar)
                except OSError:
                    pass  # a read-only folder: the in-memory index still works
        self.index = index
        return index
