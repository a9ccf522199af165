"""The in-process Hamming index: exact against a brute-force scan, filters as masks, the Matryoshka
funnel, the sidecar cache, and never a stale or deleted chunk, even after kill -9 of a writer."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mlx_jina.kb import binary_index, vectors
from mlx_jina.kb.binary_index import BinaryIndex
from mlx_jina.kb.search import Filters, vector_search
from mlx_jina.kb.store import Binding, NewChunk, Store

DIMS = 200  # not a multiple of 64: the last word is zero-padded


def random_index(rng: np.random.Generator, n: int, dims: int = DIMS) -> tuple[BinaryIndex, np.ndarray]:
    bits = rng.integers(0, 2, (n, dims), dtype=np.uint8)
    packed = np.packbits(bits, axis=1, bitorder="little")
    rows = [(10 + 3 * i, i % 7, packed[i].tobytes()) for i in range(n)]
    return BinaryIndex.from_rows("t", rows), bits


def brute_force(bits: np.ndarray, query: np.ndarray) -> np.ndarray:
    return (bits != query).sum(1)


@pytest.mark.parametrize(("threads", "sample_min", "margin"), [(1, 10**9, 2), (3, 10**9, 2), (3, 16, 2), (1, 16, 0)])
def test_nearest_is_the_exact_hamming_top_n_nearest_first(monkeypatch, threads, sample_min, margin):
    """Also when the cut is guessed from a sample (sample_min 16), and when that guess holds too
    few rows (margin 0) so the full histogram decides."""
    monkeypatch.setattr(binary_index, "SCAN_THREADS", threads)
    monkeypatch.setattr(binary_index, "MIN_BLOCKS_PER_THREAD", 1)  # 3 blocks: one per thread
    monkeypatch.setattr(binary_index, "SAMPLE_MIN", sample_min)
    monkeypatch.setattr(binary_index, "SAMPLE_MARGIN", margin)
    monkeypatch.setattr(binary_index, "SAMPLE_SLACK", 0 if margin == 0 else binary_index.SAMPLE_SLACK)
    rng = np.random.default_rng(0)
    index, bits = random_index(rng, 40_000)  # several scan blocks
    for _ in range(5):
        query = rng.integers(0, 2, DIMS, dtype=np.uint8)
        qbytes = np.packbits(query, bitorder="little").tobytes()
        dist = brute_force(bits, query)
        got = index.nearest(qbytes, 50)
        rows = (got - 10) // 3
        assert len(got) == 50 and len(set(got.tolist())) == 50
        assert np.all(np.diff(dist[rows]) >= 0)  # nearest first
        assert dist[rows].max() == np.sort(dist)[49]  # the 50 smallest distances, ties aside
        np.testing.assert_array_equal(index.distances(index.query_words(qbytes)), dist)


def test_filters_are_masks_and_small_indexes_return_everything_allowed():
    rng = np.random.default_rng(1)
    index, bits = random_index(rng, 500)
    query = rng.integers(0, 2, DIMS, dtype=np.uint8)
    qbytes = np.packbits(query, bitorder="little").tobytes()
    got = index.nearest(qbytes, 20, allowed_docs=np.array([3, 5]))
    rows = (got - 10) // 3
    assert set((rows % 7).tolist()) <= {3, 5} and len(got) == 20
    allowed_rows = np.flatnonzero(np.isin(np.arange(500) % 7, [3, 5]))
    assert brute_force(bits, query)[rows].max() == np.sort(brute_force(bits, query)[allowed_rows])[19]
    assert len(index.nearest(qbytes, 10_000, allowed_docs=np.array([3]))) == np.count_nonzero(np.arange(500) % 7 == 3)
    assert len(index.nearest(qbytes, 5, allowed_docs=np.array([99]))) == 0


def test_matryoshka_funnel_ranks_its_prefix_candidates_by_the_full_code():
    rng = np.random.default_rng(2)
    index, bits = random_index(rng, 5000, 256)
    query = rng.integers(0, 2, 256, dtype=np.uint8)
    qbytes = np.packbits(query, bitorder="little").tobytes()
    got = (index.nearest(qbytes, 10, prefix_bits=64) - 10) // 3
    prefix = brute_force(bits[:, :64], query[:64])
    shortlist = np.argsort(prefix, kind="stable")[:80]
    assert prefix[got].max() <= np.sort(prefix)[79]  # came from the prefix shortlist
    full = brute_force(bits, query)
    assert np.all(np.diff(full[got]) >= 0)
    assert full[got].max() == np.sort(full[shortlist])[9]


def unit_rows(rng: np.random.Generator, n: int, dims: int) -> np.ndarray:
    x = rng.standard_normal((n, dims)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write(store: Store, path: str, x: np.ndarray) -> None:
    bits, int8 = vectors.encode(x)
    chunks = [NewChunk(i, "", 1, 1, f"t{i}", f"b{i}", f"{path}-{i}-{time.time()}", bits[i], int8[i])
              for i in range(len(x))]
    store.write_document(path=path, root="/n", rel=path[3:], kind="text", language=None, content_hash=path,
                         size=1, mtime=1.0, chunks=chunks)


def exact_in_snapshot(store: Store, q: np.ndarray) -> dict[int, float]:
    """int8 cosine over every stored row, read in the caller's snapshot (small stores: the vector
    search takes every row as a candidate, so it must equal this)."""
    rows = store.conn.execute("SELECT chunk_id, int8 FROM chunk_vectors").fetchall()
    if not rows:
        return {}
    stored = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.int8).reshape(len(rows), -1)
    scores = vectors.rescore(q, stored)
    return {rows[i][0]: float(scores[i]) for i in np.argsort(-scores, kind="stable")}


def test_the_index_follows_every_write_and_the_sidecar_is_only_a_cache(tmp_path):
    rng = np.random.default_rng(3)
    db = tmp_path / "kb.db"
    store = Store(db)
    store.bind(Binding("fake", None, None, 64))
    write(store, "/n/a.md", unit_rows(rng, 30, 64))
    q = unit_rows(rng, 1, 64)[0]
    with store.snapshot():
        assert vector_search(store, q, Filters(), 100) == exact_in_snapshot(store, q)
    assert store.sidecar_path.exists()
    other = Store(db)  # another process's view: loads the sidecar, then sees its writes
    write(other, "/n/a.md", unit_rows(rng, 20, 64))  # replaced: 30 old chunk ids are gone
    write(other, "/n/b.md", unit_rows(rng, 5, 64))
    with store.snapshot():
        got = vector_search(store, q, Filters(), 100)
        assert got == exact_in_snapshot(store, q) and len(got) == 25
    store.sidecar_path.write_bytes(b"not an index")  # a damaged cache is rebuilt, never trusted
    fresh = Store(db)
    with fresh.snapshot():
        assert vector_search(fresh, q, Filters(), 100) == exact_in_snapshot(fresh, q)
    other.remove_document(other.document("/n/b.md").id)
    with fresh.snapshot():
        assert len(vector_search(fresh, q, Filters(), 100)) == 20


WRITER = """
import sys, time, numpy as np
from mlx_jina.kb import binary_index, vectors
from mlx_jina.kb.store import Binding, NewChunk, Store
store = Store(sys.argv[1])
store.bind(Binding("fake", None, None, 64))
rng = np.random.default_rng(int(sys.argv[2]))
print("ready", flush=True)
while True:
    doc = int(rng.integers(0, 12))
    if rng.random() < 0.2 and store.document(f"/n/{doc}.md"):
        store.remove_document(store.document(f"/n/{doc}.md").id)
        continue
    x = rng.standard_normal((int(rng.integers(1, 8)), 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    bits, int8 = vectors.encode(x)
    chunks = [NewChunk(i, "", 1, 1, "t", "b", f"{doc}-{i}-{time.time()}", bits[i], int8[i]) for i in range(len(x))]
    store.write_document(path=f"/n/{doc}.md", root="/n", rel=f"{doc}.md", kind="text", language=None,
                         content_hash=str(time.time()), size=1, mtime=1.0, chunks=chunks)
"""


@pytest.mark.slow
def test_kill_9_of_a_writer_never_yields_wrong_or_deleted_chunks(tmp_path):
    """A writer replaces and deletes documents in a loop and is killed at a random moment, while
    this process searches; every search must equal the exact answer of its own snapshot, during
    the writes, after the kill, and in a fresh process that finds the sidecar."""
    db = tmp_path / "kb.db"
    seed = 1
    rng = np.random.default_rng(seed)
    reader = None
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(seed * 10 + round_)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()
        reader = reader or Store(db)
        deadline = time.time() + rng.uniform(0.2, 0.8)
        searches = 0
        while time.time() < deadline or searches < 3:
            q = unit_rows(rng, 1, 64)[0]
            with reader.snapshot():
                assert vector_search(reader, q, Filters(), 100) == exact_in_snapshot(reader, q)
            searches += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        for store in (reader, Store(db)):
            q = unit_rows(rng, 1, 64)[0]
            with store.snapshot():
                got = vector_search(store, q, Filters(), 100)
                assert got == exact_in_snapshot(store, q)
                live = {r[0] for r in store.conn.execute("SELECT id FROM chunks")}
                assert set(got) == live  # every live chunk, no deleted one


def test_candidates_grow_with_the_rows_searched_and_shrink_with_more_bits():
    ref = vectors.CALIBRATION_BITS
    small, large, huge = (vectors.candidates(10, rows, ref) for rows in (1_000, 1_000_000, 10**9))
    assert small == 10 * vectors.OVERSAMPLE  # small stores: the fixed oversampling
    assert large == round(10 * vectors.OVERSAMPLE_PER_SQRT_ROW * 1_000) > small  # sqrt(rows) growth
    assert huge == vectors.MAX_CANDIDATES
    assert vectors.candidates(1, 0, ref) == vectors.MIN_CANDIDATES
    assert vectors.candidates(20, 1_000_000, ref) == 2 * large
    wide = vectors.candidates(10, 1_000_000, 2 * ref)
    assert small <= wide < large and wide == math.ceil(large / 4)


def test_rescored_rows_are_a_share_of_the_candidates_and_wide_codes_start_with_a_prefix():
    assert vectors.rescored(10, 3000) == math.ceil(vectors.RESCORED_SHARE * 3000) > 10 * vectors.RESCORED_PER_RESULT
    assert vectors.rescored(10, 400) == 10 * vectors.RESCORED_PER_RESULT
    assert vectors.rescored(10, 50) == 50  # never more than there are
    assert vectors.funnel_prefix(vectors.FUNNEL_MIN_BITS) == vectors.FUNNEL_MIN_BITS // 2
    assert vectors.funnel_prefix(vectors.FUNNEL_MIN_BITS - 64) == 0


def test_keep_ranks_the_hamming_candidates_by_the_float_query_against_their_signs():
    rng = np.random.default_rng(4)
    x = unit_rows(rng, 3000, DIMS)
    packed = np.packbits(x > 0, axis=1, bitorder="little")
    index = BinaryIndex.from_rows("t", [(10 + 3 * i, 0, packed[i].tobytes()) for i in range(len(x))])
    q = unit_rows(rng, 1, DIMS)[0]
    qbytes = np.packbits(q > 0, bitorder="little").tobytes()
    hamming = index.nearest(qbytes, 400)
    got = index.nearest(qbytes, 400, query=q, keep=40)
    signs = np.where(x > 0, 1.0, -1.0) @ q  # the float query against each row's +-1 sign vector
    expected = hamming[np.argsort(-signs[(hamming - 10) // 3], kind="stable")[:40]]
    assert len(got) == 40 and set(got.tolist()) <= set(hamming.tolist())
    np.testing.assert_array_equal(got, expected)
    assert index.nearest(qbytes, 400, query=q, keep=400).tolist() == hamming.tolist()  # keep all: Hamming order
