"""Search latency and recall@10 of the knowledge base's binary-KNN + rescoring path at 100k chunks.

Not a test: run it by hand from the repository root (`python -m benchmarks.kb_search`), it prints a
table. Embeddings are the shared corpus's (benchmarks/corpus.py): real all-MiniLM-L6-v2 sentence
embeddings of docstring paragraphs, run in numpy and cached. Ground truth is exact float32 cosine
search over the same vectors.

Besides the product path (what `KnowledgeBase.search(mode="vector")` runs), it compares rescoring
stores per chunk: hamming only, float query against the unpacked bits, per-vector int8, per-dimension
calibrated int8 and float16, at several oversampling factors; that table backs the choice in
mlx_jina/kb/vectors.py. The 1024-d run (the real model's size: 128 B of bits + 1024 B of int8 per
chunk) times search over --scale synthetic clustered vectors: latency only, as timing does not
depend on meaning but recall does. Query embedding time is not included. `--chunks 50000` reuses
the first cached shards when the full 100k have not been embedded yet (~45 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import mlx_jina  # noqa: F401  (fast BLAS before anything imports mlx.core)
from benchmarks.corpus import MAX_TOKENS, build_store, clustered, docstring_paragraphs, embed_cached
from mlx_jina.kb import vectors
from mlx_jina.kb.search import search
from mlx_jina.kb.store import Store
from mlx_jina.postprocess import finalize


# ---------------------------------------------------------------- rescoring options (numpy)
def _int8_per_dim(calib: np.ndarray):
    """sentence-transformers style: per-dimension [min, max] from a calibration sample -> 256 levels."""
    lo, hi = calib.min(0), calib.max(0)
    step = (hi - lo) / 255.0
    return lambda x: (np.clip(np.rint((x - lo) / step), 0, 255) - 128).astype(np.int8), lambda q: q * step


def rescoring_table(x: np.ndarray, queries: np.ndarray, truth: list[set[int]], store: Store,
                    factors: list[int]) -> list[str]:
    """recall@10 of each stored form, reranking the same Hamming candidates (the KB's index)."""
    d = x.shape[1]
    int8_vec = finalize(x, dimensions=None, normalized=False, embedding_type="int8").astype(np.float32)
    int8_vec /= np.linalg.norm(int8_vec, axis=1, keepdims=True)
    quant, _ = _int8_per_dim(x[:10_000])
    int8_dim = quant(x).astype(np.float32) + 128.0
    lo, step = x[:10_000].min(0), (x[:10_000].max(0) - x[:10_000].min(0)) / 255.0
    f16 = x.astype(np.float16).astype(np.float32)
    signs = np.where(x > 0, 1.0, -1.0).astype(np.float32)
    forms = {
        "hamming only": (d // 8, None),
        "float query . bits": (d // 8, lambda q, ids: signs[ids] @ q),
        "int8 per-vector": (d // 8 + d, lambda q, ids: int8_vec[ids] @ q),
        "int8 per-dim calibrated": (d // 8 + d, lambda q, ids: (int8_dim[ids] * step + lo) @ q),
        "float16": (d // 8 + 2 * d, lambda q, ids: f16[ids] @ q),
    }
    lines = [f"{'stored per chunk':26s} {'bytes':>6s} " + " ".join(f"{'x' + str(f):>7s}" for f in factors)]
    cands: dict[int, list[np.ndarray]] = {f: [] for f in factors}
    for q in queries:
        for f in factors:
            with store.snapshot():
                cands[f].append(store.vector_index().nearest(vectors.query_bits(q), 10 * f) - 1)
    for name, (nbytes, score) in forms.items():
        cells = []
        for f in factors:
            rec = []
            for q, ids, t in zip(queries, cands[f], truth):
                top = ids[:10] if score is None else ids[np.argsort(-score(q, ids))[:10]]
                rec.append(len(t & set(top.tolist())) / 10)
            cells.append(f"{np.mean(rec):7.3f}")
        lines.append(f"{name:26s} {nbytes:6d} " + " ".join(cells))
    return lines


# ---------------------------------------------------------------- the product path
def build_db(path: Path, x: np.ndarray, texts: list[str], per_doc: int = 100) -> None:
    """Write x as chunks of len(x)/per_doc documents through the knowledge base's own store."""
    store, _ = build_store(path, texts, x, per_doc=per_doc)
    store.close()


def time_search(path: Path, queries: np.ndarray, qtexts: list[str], mode: str,
                truth: list[set[int]] | None) -> tuple[float, float, float | None]:
    """Median and p95 ms per query (and recall@10 when truth is given) through the KB's search()."""
    store = Store(path)
    times: list[float] = []
    rec: list[float] = []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        hits = search(store, qtexts[i], q, k=10, mode=mode, per_doc=10)
        times.append(time.perf_counter() - start)
        if truth is not None:
            rec.append(len(truth[i] & {h.chunk_id - 1 for h in hits}) / 10)
    store.close()
    ms = np.array(times[5:]) * 1000  # first queries warm the page cache
    return float(np.median(ms)), float(np.percentile(ms, 95)), (float(np.mean(rec)) if rec else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="real embedded chunks (recall + latency)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--scale", type=int, default=100_000, help="chunks of the 1024-d latency run")
    args = parser.parse_args()
    texts = docstring_paragraphs(100_000 + args.queries)  # fixed list: shards are shared by every --chunks
    emb = np.concatenate([embed_cached(texts[: args.chunks], "minilm"), embed_cached(texts[100_000:], "minilm")])
    x, queries = emb[: args.chunks], emb[args.chunks :]
    qtexts = [" ".join(t.split()[:8]) for t in texts[100_000:]]  # keyword side: a typed query's length
    truth = [set(np.argsort(-(x @ q))[:10].tolist()) for q in queries]
    start = time.perf_counter()
    for q in queries[:50]:
        np.argsort(-(x @ q))[:10]
    exact_ms = (time.perf_counter() - start) / 50 * 1000
    print(f"{args.chunks} chunks, {len(queries)} queries, all-MiniLM-L6-v2 ({x.shape[1]}-d, {MAX_TOKENS} tokens) "
          "on docstring paragraphs")
    print(f"exact float32 numpy brute force: {exact_ms:.1f} ms/query\n")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        build_db(db, x, texts[: args.chunks])
        store = Store(db)
        print("recall@10 vs exact float search; columns: KNN candidates = 10 x factor, then rescored")
        print("\n".join(rescoring_table(x, queries, truth, store, [1, 4, 10, 20, 40])))
        store.close()
        print(f"\nproduct path (KnowledgeBase search, k=10; query embedding not included), {_mb(db)} MB DB:")
        for mode in ("vector", "hybrid", "keyword"):
            med, p95, rec = time_search(db, queries, qtexts, mode, truth if mode == "vector" else None)
            extra = f", recall@10 {rec:.3f}" if rec is not None else ""
            print(f"  {mode:8s} median {med:6.1f} ms, p95 {p95:6.1f} ms{extra}")
        rng = np.random.default_rng(0)
        big = clustered(rng, args.scale, 1024)
        big_q = big[rng.integers(0, args.scale, 100)] + 0.5 * rng.standard_normal((100, 1024), dtype=np.float32)
        big_q /= np.linalg.norm(big_q, axis=1, keepdims=True)
        db1024 = Path(tmp) / "bench1024.db"
        filler = [texts[i % len(texts)] for i in range(args.scale)]
        build_db(db1024, big, filler)
        print(f"\n{args.scale} synthetic 1024-d chunks (bit[1024] 128 B + int8 1024 B each), {_mb(db1024)} MB DB:")
        for mode in ("vector", "hybrid"):
            med, p95, _ = time_search(db1024, big_q, qtexts[:100], mode, None)
            print(f"  {mode:8s} median {med:6.1f} ms, p95 {p95:6.1f} ms (latency only: synthetic vectors)")


def _mb(db: Path) -> int:
    return round(sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists()) / 1e6)


if __name__ == "__main__":
    main()
