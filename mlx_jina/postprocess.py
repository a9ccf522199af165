"""From raw pooled vectors to what the caller asked for: Matryoshka slice, L2 normalisation and
the output encodings of the Jina API.

Bit order: `ubinary` packs sign bits MSB-first (numpy's default; the sentence-transformers and
Jina/Cohere convention): bit 7 of byte 0 is dimension 0. `binary` is the same bytes offset by
-128 into int8 (sentence-transformers' convention). sqlite-vec's `bit[]` columns read LSB-first:
convert with `to_sqlite_vec_bits` before storing, never mix the two.

`int8` scales each vector by 127 / max|v| (per vector, symmetric): directions and so cosine
similarities are kept to ~1e-3, with no calibration set needed.
"""

from __future__ import annotations

import base64

import numpy as np

from mlx_jina.errors import InputError

EMBEDDING_TYPES = ("float", "float16", "int8", "binary", "ubinary", "base64")


def check_embedding_type(embedding_type: str) -> None:
    if embedding_type not in EMBEDDING_TYPES:
        raise InputError(f"embedding_type {embedding_type!r} is not one of {list(EMBEDDING_TYPES)}")


def finalize(raw: np.ndarray, *, dimensions: int | None, normalized: bool, embedding_type: str) -> np.ndarray:
    """raw: float32 [N, hidden] pooled vectors -> [N, ...] in the requested form (slice, then normalise)."""
    check_embedding_type(embedding_type)
    vectors = np.ascontiguousarray(raw[:, :dimensions] if dimensions else raw, dtype=np.float32)
    if normalized:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    if embedding_type == "float":
        return vectors
    if embedding_type == "float16":
        return vectors.astype(np.float16)
    if embedding_type == "int8":
        scale = 127.0 / np.maximum(np.abs(vectors).max(axis=1, keepdims=True), 1e-12)
        return np.clip(np.rint(vectors * scale), -127, 127).astype(np.int8)
    if embedding_type == "base64":
        return np.array([base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors], dtype=object)
    ubinary = np.packbits(vectors > 0, axis=1)
    if embedding_type == "ubinary":
        return ubinary
    return (ubinary.astype(np.int16) - 128).astype(np.int8)


def to_sqlite_vec_bits(ubinary: np.ndarray) -> np.ndarray:
    """MSB-first packed bits (our `ubinary`) -> LSB-first packed bits (sqlite-vec `bit[]`, `vec_quantize_binary`)."""
    return np.packbits(np.unpackbits(np.asarray(ubinary, dtype=np.uint8), axis=-1), axis=-1, bitorder="little")
