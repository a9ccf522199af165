"""Probe vectors: a few fixed texts embedded when a database is created, so that any later writer
(the local model, a quantized one, a remote engine) proves it produces the same vector space before
it adds a single vector. A model name can match while the space does not (another checkpoint
behind the same name, a misconfigured remote); a cosine below MIN_COSINE means it does not.

bf16 and merged-adapter engines differ from our float32 path by about 1e-3 in cosine, which passes;
another model or task lands far below (random directions at these sizes are ~0).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from mlx_jina.errors import ModelMismatchError

PROBE_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "Steps to reset a forgotten password on the login page",
    "Rezept: Linsensuppe mit Karotten und Kreuzkümmel",
    "上周我们把用户数据库迁移到了新的服务器",
)
MIN_COSINE = 0.99
META_KEY = "probe_vectors"


def embed(embedder: Any, *, task: str, dimensions: int) -> np.ndarray:
    return np.asarray(embedder.encode(list(PROBE_TEXTS), task=task, dimensions=dimensions, truncate=True),
                      dtype=np.float32)


def dumps(vectors: np.ndarray) -> str:
    return json.dumps({"shape": list(vectors.shape),
                       "float32": base64.b64encode(vectors.astype("<f4").tobytes()).decode("ascii")})


def loads(value: str) -> np.ndarray:
    data = json.loads(value)
    return np.frombuffer(base64.b64decode(data["float32"]), dtype="<f4").reshape(data["shape"])


def check(recorded: np.ndarray, fresh: np.ndarray, *, db: Any, who: str) -> float:
    """The lowest probe cosine; ModelMismatchError when any is below MIN_COSINE."""
    if recorded.shape != fresh.shape:
        raise ModelMismatchError(f"{db}: probe vectors have shape {recorded.shape}, {who} gives {fresh.shape}")
    unit = fresh / np.maximum(np.linalg.norm(fresh, axis=1, keepdims=True), 1e-12)
    ref = recorded / np.maximum(np.linalg.norm(recorded, axis=1, keepdims=True), 1e-12)
    worst = float(np.min(np.sum(unit * ref, axis=1)))
    if not worst >= MIN_COSINE:
        raise ModelMismatchError(
            f"{db} was built in another vector space: {who} embeds its probe texts at cosine {worst:.3f} to the "
            f"recorded ones (at least {MIN_COSINE} needed). Nothing was written. Use the model the index was "
            "built with, or re-embed everything with this one: `mlx-jina index --reembed FOLDER`."
        )
    return worst
