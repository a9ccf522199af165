"""The keyword side's shortlist (search._shortlisted): its first results are FTS5's own BM25 order,
whether the shortlist is kept or its bound sends the query back to ranking every match."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mlx_jina.kb import search, vectors
from mlx_jina.kb.search import Filters
from mlx_jina.kb.store import Binding, NewChunk, Store

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """600 chunks of 3-40 words drawn with skewed frequencies (common and rare terms, short and
    long chunks), plus 70 where `lima` is rarer and long-winded and `mike` is repeated in short
    chunks: a chunk with `mike` alone outscores the shortlist, whose bound must notice."""
    rng = np.random.default_rng(0)
    store = Store(tmp_path_factory.mktemp("kb") / "kb.db")
    store.bind(Binding("fake", None, None, 64))
    weights = 1.0 / np.arange(1, len(WORDS) + 1) ** 1.5
    bits, int8 = vectors.encode(np.eye(64, dtype=np.float32)[:1])
    documents = []
    for d in range(60):
        chunks = []
        for i in range(10):
            body = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 40)), p=weights / weights.sum()))
            chunks.append(NewChunk(i, "", i + 1, i + 1, body, body, hashlib.sha256(f"{d}-{i}".encode()).digest(),
                                   bits[0], int8[0]))
        documents.append(dict(path=f"/n/{d}.md", root="/n", rel=f"{d}.md", kind="markdown", language=None,
                              content_hash=f"{d}".encode(), size=1, mtime=1.0, chunks=chunks))
    special = [f"lima {' '.join(WORDS * 3)}"] * 30 + ["mike mike mike"] * 40
    documents.append(dict(path="/n/special.md", root="/n", rel="special.md", kind="markdown", language=None,
                          content_hash=b"special", size=1, mtime=1.0, chunks=[
                              NewChunk(i, "", i + 1, i + 1, body, body, hashlib.sha256(f"s-{i}".encode()).digest(),
                                       bits[0], int8[0]) for i, body in enumerate(special)]))
    store.write_documents(documents)
    return store


def ranked(store: Store, query: str, k: int) -> list[tuple[int, float]]:
    hits = search.search(store, query, None, k=k, mode="keyword", per_doc=k)
    return [(h.chunk_id, round(h.score, 9)) for h in hits]


def test_the_first_results_are_bm25_order_with_the_shortlist_kept_or_refused(store, monkeypatch):
    outcomes: list[bool] = []
    shortlisted = search._shortlisted

    def spy(*args, **kwargs):
        rows = shortlisted(*args, **kwargs)
        outcomes.append(rows is not None)
        return rows

    picks = ([0, 1], [0, 9], [1, 2, 8], [3, 4, 5, 6], [0, 7, 9], [2, 9])
    queries = [" ".join(WORDS[i] for i in idx) for idx in picks] + ["lima mike", "lima mike alpha"]
    monkeypatch.setattr(search, "COMMON_TERM_MIN", 10**6)  # keep every term (the table is small)
    monkeypatch.setattr(search, "SHORTLIST_MAX_TERMS", 0)  # reference: every match ranked
    expected = {q: ranked(store, q, 10) for q in queries}
    monkeypatch.setattr(search, "SHORTLIST_MAX_TERMS", 8)
    monkeypatch.setattr(search, "SHORTLIST_MIN_MATCHES", 0)  # shortlist even this small table
    monkeypatch.setattr(search, "_shortlisted", spy)
    for q in queries:
        assert ranked(store, q, 10) == expected[q], q
    assert True in outcomes and False in outcomes  # both branches were taken


def test_a_kept_shortlist_leaves_out_only_chunks_with_one_term_other_than_the_rarest(store, monkeypatch):
    monkeypatch.setattr(search, "COMMON_TERM_MIN", 10**6)
    monkeypatch.setattr(search, "SHORTLIST_MIN_MATCHES", 0)
    terms = ["alpha", "bravo", "juliet"]
    with store.snapshot() as conn:
        counts = search.document_frequencies(conn, terms)
        every = search._keyword(conn, terms, Filters(), 10**6)
        total = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        rows = search._shortlisted(conn, terms, " OR ".join(terms), 10**6, 0, counts, total)
        assert rows is not None
        bodies = dict(conn.execute("SELECT id, body FROM chunks").fetchall())
    kept = {chunk_id for chunk_id, _ in rows}
    rarest = min(terms, key=counts.__getitem__)
    for chunk_id in every:
        present = {t for t in terms if t in bodies[chunk_id].split()}
        assert (chunk_id in kept) == (len(present) >= 2 or rarest in present)
