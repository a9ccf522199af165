"""Hybrid search: FTS5 BM25 and binary KNN + int8 rescoring, fused by reciprocal rank.

Each side returns its candidates in its own order (`vectors.rescored` on the vector side); RRF (score = sum of
1/(60 + rank)) needs no score calibration between BM25 and cosine. Filters (path glob, file kind or
extension, modified since) are applied inside both queries, so a filter never empties the top k
that a post-filter would have. At most `per_doc` chunks of one document are kept, so one long
note does not fill the page.
"""

from __future__ import annotations

import functools
import itertools
import math
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlx_jina.errors import InputError
from mlx_jina.kb import keywords, vectors
from mlx_jina.kb.connect import backend
from mlx_jina.kb.paths import from_sql, printable
from mlx_jina.kb.store import Store

MODES = ("hybrid", "vector", "keyword")
RRF_K = 60
KEYWORD_OVERSAMPLE = 20  # BM25 candidates per result wanted
COMMON_TERM_SHARE = 0.05  # of all chunks ...
COMMON_TERM_MIN = 1000  # ... and at least this many: small indexes are fast anyway, keep every term
#: The keyword side's first EXACT_PER_RESULT * k are always FTS5's own BM25 order (_shortlisted).
EXACT_PER_RESULT = 2
SHORTLIST_MAX_TERMS = 8  # pairs of terms to match: 28 at 8 terms
SHORTLIST_MIN_MATCHES = 5000  # fewer matching chunks in all: ranking them all is fast enough
BM25_K1 = 1.2  # FTS5's bm25() default


@dataclass(frozen=True)
class Filters:
    """path: SQLite GLOB on the relative or absolute path (`*` also matches '/', so 'work/*' and
    'work/**' both mean everything under work/). kinds: kind names (markdown, code, pdf...) or
    extensions (md, py). since: POSIX time; only files modified at or after it."""

    path: str | None = None
    kinds: tuple[str, ...] = ()
    since: float | None = None

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE fragment over documents `d` (always valid SQL) and its parameters."""
        parts: list[str] = ["1"]
        params: list[Any] = []
        if self.path:
            parts.append("(d.rel GLOB ? OR d.path GLOB ?)")
            params += [self.path, self.path]
        if self.kinds:
            names = [k.lower().lstrip(".") for k in self.kinds]
            parts.append("(" + " OR ".join(["d.kind = ?", "lower(d.rel) GLOB ?"] * len(names)) + ")")
            for name in names:
                params += [name, f"*.{name}"]
        if self.since is not None:
            parts.append("d.mtime >= ?")
            params.append(self.since)
        return " AND ".join(parts), params

    def __bool__(self) -> bool:
        return bool(self.path or self.kinds or self.since is not None)


@dataclass(frozen=True)
class Hit:
    """One result; `score` is RRF (hybrid), cosine (vector) or -BM25 (keyword), higher is better;
    rerank_score: P(yes) from the reranker when the search reranked (then hits are in its order).
    snippet: the part of the chunk that matched the query's keywords (else its first lines);
    highlights: the [start, end) character offsets of the matched terms in `snippet`."""

    path: str
    rel: str
    kind: str
    heading: str
    start_line: int
    end_line: int
    snippet: str
    score: float
    vector_score: float | None
    keyword_score: float | None
    chunk_id: int
    highlights: tuple[tuple[int, int], ...] = ()
    rerank_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """For JSON: a file name that is not valid UTF-8 shows its odd bytes as \\xNN (a lone
        surrogate would make the JSON unreadable to strict parsers); `Hit.path` keeps the exact name."""
        return asdict(self) | {"path": printable(self.path), "rel": printable(self.rel)}

    def marked(self, before: str = "[", after: str = "]") -> str:
        """The snippet with each highlighted term between `before` and `after`."""
        out, pos = [], 0
        for start, end in self.highlights:
            out += [self.snippet[pos:start], before, self.snippet[start:end], after]
            pos = end
        return "".join(out) + self.snippet[pos:]


def search(store: Store, query: str, query_vector: np.ndarray | None, *, k: int = 10, mode: str = "hybrid",
           filters: Filters = Filters(), per_doc: int = 2) -> list[Hit]:
    """Top-k hits for `query`. query_vector (the retrieval.query embedding) is needed unless
    mode == "keyword"."""
    check_options(mode=mode, k=k, per_doc=per_doc)
    with store.snapshot() as conn:
        return _search(store, conn, query, query_vector, k=k, mode=mode, filters=filters, per_doc=per_doc)


def _search(store: Store, conn: Any, query: str, query_vector: np.ndarray | None, *, k: int, mode: str,
            filters: Filters, per_doc: int) -> list[Hit]:
    # The vector side's Hamming scan (numpy) runs on another thread while FTS5 ranks the keywords on
    # this one: both release the GIL, so a hybrid query takes about the longer of the two, not their
    # sum. Only this thread touches the connection (the scan needs none).
    query_vector = _query_vector(query_vector) if mode != "keyword" else None
    nearest = _nearest(store, query_vector, filters, k=k) if query_vector is not None else None
    scanning = _vector_thread().submit(nearest) if nearest and mode == "hybrid" else None
    terms = keywords.query_terms(query)
    keyword: dict[int, float] = {}
    if mode != "vector":
        terms, counts, chunks = _informative(store, conn, terms)
        keyword = _keyword(conn, terms, filters, keyword_candidates(k), exact=EXACT_PER_RESULT * k,
                           counts=counts, chunks=chunks)
    vector: dict[int, float] = {}
    if nearest and query_vector is not None:
        vector = _rescored(store, query_vector, scanning.result() if scanning else nearest())
    if mode == "hybrid":
        fused: dict[int, float] = {}
        for ranked in (keyword, vector):
            for rank, chunk_id in enumerate(ranked):
                fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        order = fused
    else:
        order = keyword or vector
    ranked_ids = sorted(order, key=order.__getitem__, reverse=True)
    return _hits(conn, ranked_ids, order, vector, keyword, k, per_doc, terms)


@functools.cache
def _vector_thread() -> ThreadPoolExecutor:
    """Not binary_index's scan pool: the scan this thread runs hands its spans to that pool."""
    return ThreadPoolExecutor(1, thread_name_prefix="vector-side")


def check_options(*, mode: str, k: int, per_doc: int) -> None:
    """InputError naming the first bad search option: checked before any work (embedding the query)."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r} is not one of {list(MODES)}")
    for name, value in (("k", k), ("per_doc", per_doc)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, not {value!r}")


def _keyword(conn: Any, terms: list[str], filters: Filters, n: int, *, exact: int = 0,
             counts: dict[str, int] | None = None, chunks: int = 0) -> dict[int, float]:
    """chunk id -> -BM25 (higher is better), best first. The query's terms (keywords.query_terms:
    quoted words, CJK phrases) are OR-ed, so natural-language questions work and FTS5 syntax
    characters cannot break the query. With their chunk `counts` (out of `chunks`), the first
    `exact` can come from the shortlist of `_shortlisted`, else every matching chunk is ranked."""
    if not terms:
        return {}
    match = " OR ".join(terms)
    if filters:  # a chunk's document from the narrow (chunk_id, doc_id) index, not the wide vector rows (schema.py)
        where, params = filters.sql()
        rows = conn.execute(
            "SELECT f.rowid, bm25(chunks_fts) AS s FROM chunks_fts f "
            "JOIN chunk_vectors v INDEXED BY chunk_vectors_doc ON v.chunk_id = f.rowid "
            f"JOIN documents d ON d.id = v.doc_id WHERE chunks_fts MATCH ? AND {where} ORDER BY s LIMIT ?",
            (match, *params, n)).fetchall()
    else:  # no join: FTS5 alone (a join with chunks and documents doubled the time)
        rows = (_shortlisted(conn, terms, match, n, exact, counts, chunks) if counts else None) or conn.execute(
            "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?",
            (match, n)).fetchall()
    return {chunk_id: -score for chunk_id, score in rows}


def _shortlisted(conn: Any, terms: list[str], match: str, n: int, exact: int, counts: dict[str, int],
                 chunks: int) -> list[Any] | None:
    """The best n of the chunks that match two of the terms or the rarest one, by BM25 over all the
    terms; None when that could change the best `exact` (then every matching chunk is ranked).

    FTS5 spends ~1 us of bm25() per matching chunk (finding them is ~15x cheaper), and the OR of an
    8-word query's informative terms matches ~60k of 1M chunks. A chunk left out matches exactly
    one term t other than the rarest, so it scores below idf(t) * (k1 + 1); when the `exact`-th
    kept chunk scores at least the largest such bound, none of them belongs before it (MaxScore's
    argument). Deeper candidates, which only feed the fusion, may miss such chunks. Measured
    (benchmarks/store.py's 1M chunks, 200 8-word queries): keyword side 63 -> 34 ms p50, the first
    20 identical on every query, the shortlist kept by 142 of the 187 that tried it."""
    if not 2 <= len(terms) <= SHORTLIST_MAX_TERMS or sum(counts[t] for t in terms) <= SHORTLIST_MIN_MATCHES:
        return None
    rarest, *others = sorted(terms, key=counts.__getitem__)
    shortlist = " OR ".join([*(f"({a} AND {b})" for a, b in itertools.combinations([rarest, *others], 2)), rarest])
    rows = conn.execute(
        "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? AND +rowid IN "
        "(SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?) ORDER BY s LIMIT ?", (match, shortlist, n)).fetchall()
    bound = (BM25_K1 + 1) * max(_idf(counts[t], chunks) for t in others)
    if len(rows) < min(exact, n) or (exact and -rows[min(exact, n) - 1][1] < bound):
        return None
    return rows


def _idf(matches: int, chunks: int) -> float:
    """FTS5 bm25()'s idf of a term found in `matches` of `chunks` rows (at least 1e-6, as there)."""
    return max(math.log((max(chunks, matches) - matches + 0.5) / (matches + 0.5)), 1e-6)


def keyword_candidates(k: int) -> int:
    """BM25 hits fused per result wanted: deeper ranks add little to RRF and cost FTS5 time."""
    return max(vectors.MIN_CANDIDATES, k * KEYWORD_OVERSAMPLE)


def _informative(store: Store, conn: Any, terms: list[str]) -> tuple[list[str], dict[str, int], int]:
    """Drop terms found in many chunks ("the", "return"...): BM25 gives them little weight, but
    OR-ing them makes FTS5 rank most of the table (bench, 50k chunks, 8-word queries: 128 ms ->
    ~35 ms). Language-agnostic, unlike a stopword list. If every term is common, the rarest stays.
    Returns (kept terms, chunks containing each term kept, about how many chunks there are)."""
    if len(terms) < 2:
        return terms, {}, 0
    total = conn.execute("SELECT max(id) FROM chunks").fetchone()[0] or 0  # >= count(*), without a scan
    limit = int(max(COMMON_TERM_SHARE * total, COMMON_TERM_MIN))
    counts = term_counts(store, conn, terms, limit + 1)
    kept = [t for t in terms if 0 < counts[t] <= limit]
    if kept:
        return kept, counts, total
    if min(counts.values()) > limit:  # every term is common: count them in full to find the rarest
        counts = document_frequencies(conn, terms)
    return [min(terms, key=counts.__getitem__)], counts, total


#: Per store: (vectors_token, {(term, cap): count}). Common words recur in most queries and each
#: costs a count of `cap` postings; the token changes with any chunk, so a hit is always current.
_TERM_COUNTS: weakref.WeakKeyDictionary[Store, tuple[str, dict[tuple[str, int], int]]] = weakref.WeakKeyDictionary()
TERM_COUNTS_KEPT = 4096


def term_counts(store: Store, conn: Any, terms: list[str], cap: int) -> dict[str, int]:
    """document_frequencies(conn, terms, cap), remembered while the store's chunks stay the same."""
    token = store.vectors_token()
    cached_token, cache = _TERM_COUNTS.get(store, ("", {}))
    if cached_token != token or len(cache) > TERM_COUNTS_KEPT:
        cache = {}
        _TERM_COUNTS[store] = (token, cache)
    missing = [t for t in dict.fromkeys(terms) if (t, cap) not in cache]
    for term, count in document_frequencies(conn, missing, cap=cap).items():
        cache[(term, cap)] = count
    return {t: cache[(t, cap)] for t in terms}


def document_frequencies(conn: Any, terms: list[str], cap: int | None = None) -> dict[str, int]:
    """Chunks containing each MATCH term (phrases and prefixes too), counted by FTS5 itself so
    tokenizing and stemming always agree; with `cap`, counting stops there: whether a term is
    common needs no more. (fts5vocab's per-term counts read every posting: 5.4 ms for an 8-word
    query at 100k chunks, against 2.3 ms capped at 5,001.)"""
    sql = "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)"
    return {t: conn.execute(sql, (t, -1 if cap is None else cap)).fetchone()[0] for t in terms}


def vector_search(store: Store, query_vector: np.ndarray | None, filters: Filters, n: int | None = None,
                  prefix_bits: int | None = None, *, k: int = 10, keep: int | None = None) -> dict[int, float]:
    """The vector side alone: chunk id -> cosine, best first. The in-process index takes the `n`
    Hamming-nearest (default `vectors.candidates` for k results from this index; over its
    `prefix_bits` leading bits first, default `vectors.funnel_prefix`, 0 for none), keeps the `keep`
    best of them by the float query against their sign bits (default `vectors.rescored`; n or more:
    keep all), and those int8 rows, read from SQLite, are rescored. Call inside `store.snapshot()`.
    Public for benchmarks that vary the stages."""
    query_vector = _query_vector(query_vector)
    nearest = _nearest(store, query_vector, filters, n, prefix_bits, k=k, keep=keep)
    return _rescored(store, query_vector, nearest()) if nearest else {}


def _query_vector(query_vector: np.ndarray | None) -> np.ndarray:
    if query_vector is None:
        raise InputError("vector and hybrid search need the query's embedding")
    return query_vector


def _nearest(store: Store, query_vector: np.ndarray, filters: Filters, n: int | None = None,
             prefix_bits: int | None = None, *, k: int, keep: int | None = None) -> Callable[[], np.ndarray] | None:
    """vector_search's index stage, as a call that needs no database (so another thread can run
    it); its reads (the filter's documents, the index) happen here. None: no document passes."""
    allowed = None
    if filters:
        where, params = filters.sql()
        allowed = np.array([r[0] for r in store.conn.execute(f"SELECT d.id FROM documents d WHERE {where}", params)],
                           dtype=np.int64)
        if not len(allowed):
            return None
    index = store.vector_index()
    n = vectors.candidates(k, len(index), index.bits) if n is None else n
    prefix_bits = vectors.funnel_prefix(index.bits) if prefix_bits is None else prefix_bits
    keep = vectors.rescored(k, n) if keep is None else keep
    query_bits = vectors.query_bits(query_vector)
    return functools.partial(index.nearest, query_bits, n, allowed, prefix_bits, query=query_vector, keep=keep)


def _rescored(store: Store, query_vector: np.ndarray, near: np.ndarray) -> dict[int, float]:
    """Cosine of the query with these chunks' int8 vectors: chunk id -> score, best first."""
    ids, stored = store.int8_vectors(near)
    scores = vectors.rescore(query_vector, stored)
    order = np.argsort(-scores, kind="stable")
    return {ids[i]: float(scores[i]) for i in order}


def _hits(conn: Any, ranked_ids: list[int], score: dict[int, float], vector: dict[int, float],
          keyword: dict[int, float], k: int, per_doc: int, terms: list[str]) -> list[Hit]:
    taken: dict[int, int] = {}
    kept: list[Any] = []
    batch = 2 * k  # rows fetched at a time, best first: usually one batch shows the page
    for start in range(0, len(ranked_ids), batch):
        ids = ranked_ids[start:start + batch]
        rows = conn.execute(
            "SELECT c.id, c.doc_id, d.path, d.rel, d.kind, c.heading, c.start_line, c.end_line, c.body "
            f"FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({','.join(map(str, map(int, ids)))})"
        ).fetchall()
        by_id = {r[0]: r for r in rows}
        for chunk_id in ids:
            row = by_id.get(chunk_id)
            if row is None or taken.get(row[1], 0) >= per_doc:
                continue
            taken[row[1]] = taken.get(row[1], 0) + 1
            kept.append(row)
            if len(kept) == k:
                break
        if len(kept) == k:
            break
    hits = []
    for row, spans in zip(kept, keywords.highlights(backend().module, terms, [row[8] for row in kept])):
        snippet, marks = keywords.snippet(row[8], spans)
        chunk_id = row[0]
        hits.append(Hit(path=from_sql(row[2]), rel=from_sql(row[3]), kind=row[4], heading=row[5],
                        start_line=row[6], end_line=row[7],
                        snippet=snippet, score=score[chunk_id], vector_score=vector.get(chunk_id),
                        keyword_score=keyword.get(chunk_id), chunk_id=chunk_id, highlights=tuple(marks)))
    return hits
