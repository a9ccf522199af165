"""How a chunk vector is stored and how a query is scored against it.

Each chunk keeps two things, in one `chunk_vectors` row: its sign bits (`bits`, D/8 bytes) for the
Hamming scan of the in-process index (binary_index.py), and an int8 copy (`int8`, D bytes, scaled per
vector by 127/max|v|, so no calibration set is needed and incremental indexing never re-quantizes)
for rescoring the Hamming candidates with the float query. Cosine against the int8 copy is within ~1e-3 of float cosine.

Measured by benchmarks/kb_search.py: 100k real sentence embeddings (all-MiniLM-L6-v2, 384-d,
Python docstring paragraphs), 300 held-out queries, recall@10 against exact float search, the same
sqlite-vec Hamming candidates reranked by each stored form (candidates = 10 x factor):

    stored per chunk          bytes (384-d)   x1     x4     x10    x20    x40
    Hamming only                  48          0.504  0.504  0.504  0.504  0.504
    float query . sign bits       48          0.504  0.636  0.651  0.653  0.653
    int8, per-vector scale       432          0.504  0.823  0.932  0.968  0.987
    int8, per-dim calibrated     432          0.504  0.822  0.929  0.962  0.980
    float16                      816          0.504  0.823  0.933  0.970  0.990

The float query against the bits tops out near 0.65 whatever the oversampling; int8 reaches float16's
recall at half its bytes, and per-vector scaling equals corpus calibration without needing a
calibration set. Hence bits + per-vector int8 (D/8 + D bytes: 1152 B at 1024-d) and 20x
oversampling (0.968 here; 384 bits are a harder case than the 1024 the real model stores).
"""

from __future__ import annotations

import math

import numpy as np

from mlx_jina.postprocess import finalize, to_sqlite_vec_bits

#: Hamming candidates per result wanted ...
OVERSAMPLE = 20
#: ...and at least this many per result per sqrt(rows searched) at 384-bit codes, times
#: (384 / bits)^2 for other code sizes: the count needed grows about as sqrt(rows) and shrinks with
#: wider codes (benchmarks/store.py, recall@10 of exact float search).
OVERSAMPLE_PER_SQRT_ROW = 0.3
CALIBRATION_BITS = 384
MIN_CANDIDATES = 100
MAX_CANDIDATES = 8192
#: Of those, the ones whose int8 rows are read and rescored: the best by the float query's dot
#: product with their sign vectors (binary_index.nearest's `keep`), at least this many per result
#: and this share of the Hamming candidates. Measured (benchmarks/store.py, recall@10 vs exact
#: float, Hamming candidates -> sign-ranked -> int8): 1M x 384 bits 3,000 -> 300: 0.969 (3,000 rows
#: straight to int8: 0.980; 1,500: 0.959); 100k 1,000 -> 150: 0.968; 40k 600 -> 150: 0.978;
#: 1M x 1024 bits 500 -> 150: 0.987. The int8 reads were most of a query's time at 1M.
RESCORED_PER_RESULT = 15
RESCORED_SHARE = 0.1
#: Codes this wide are scanned on their first half first (the Matryoshka funnel,
#: binary_index.nearest's prefix_bits). Measured on 1M x 1024-bit codes of randomly rotated
#: vectors (no Matryoshka structure: each prefix bit is a random hyperplane; v5's leading
#: dimensions are trained to carry the most), 422 candidates from a 512-bit prefix's 3,376, 150
#: rescored: recall 0.981 against 0.985 for the full scan, 10.3 against 14.8 ms (BENCHMARKS.md §2a).
FUNNEL_MIN_BITS = 1024


def encode(vectors: np.ndarray) -> tuple[list[bytes], list[bytes]]:
    """Unit float32 [N, D] -> (LSB-first sign bits for vec_bit(), int8 rescoring blobs)."""
    bits = to_sqlite_vec_bits(finalize(vectors, dimensions=None, normalized=False, embedding_type="ubinary"))
    int8 = finalize(vectors, dimensions=None, normalized=False, embedding_type="int8")
    return [row.tobytes() for row in bits], [row.tobytes() for row in int8]


def query_bits(query: np.ndarray) -> bytes:
    """The coarse-search key for one unit float32 query vector."""
    return encode(query[None, :])[0][0]


def candidates(k: int, rows: int, bits: int) -> int:
    """How many Hamming neighbours to take for k results out of `rows` codes of `bits` bits."""
    per_sqrt_row = OVERSAMPLE_PER_SQRT_ROW * (CALIBRATION_BITS / max(bits, 1)) ** 2
    wanted = k * max(OVERSAMPLE, per_sqrt_row * math.sqrt(rows))
    return int(min(MAX_CANDIDATES, max(MIN_CANDIDATES, math.ceil(wanted))))


def rescored(k: int, hamming: int) -> int:
    """How many of `hamming` candidates get their int8 rows read and rescored, for k results."""
    return min(hamming, max(RESCORED_PER_RESULT * k, math.ceil(RESCORED_SHARE * hamming)))


def funnel_prefix(bits: int) -> int:
    """Leading bits the Hamming scan starts with (0: the whole code)."""
    return bits // 2 if bits >= FUNNEL_MIN_BITS else 0


def rescore(query: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """Cosine similarity of the float query with each stored int8 vector (rows of `stored`).
    einsum, not `@`: a BLAS GEMV of 500+ rows starts BLAS threads, which cost 10-30 ms on a
    busy CPU (benchmarks/store.py) against well under 1 ms single-threaded."""
    if not len(stored):
        return np.zeros(0, dtype=np.float32)
    stored = stored.astype(np.float32)
    norms = np.sqrt(np.maximum(np.einsum("ij,ij->i", stored, stored), 1e-24))
    query = query.astype(np.float32)
    return np.einsum("ij,j->i", stored, query) / norms / max(float(np.sqrt(query @ query)), 1e-12)
