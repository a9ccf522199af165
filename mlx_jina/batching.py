"""Packing sequences into forward passes: sort by length, then fill each batch up to a token
budget counted with padding, so padding waste stays small and memory stays bounded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

#: How a forward pass applies the task adapters (see Embedder.embed_ids); kept here, free of mlx,
#: so the CLI can list them without importing the model code.
ADAPTER_MODES = ("auto", "per-row", "shared", "merged")
AdapterMode = Literal["auto", "per-row", "shared", "merged"]

#: A row shorter than this fraction of its batch's longest row starts a new batch (unless the
#: padding it would add is tiny), so padding never dominates a batch.
MIN_FILL = 0.75
SMALL_PAD = 16


def plan_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches with len(batch) * longest <= batch_tokens (a single sequence
    over the budget gets a batch of its own). Longest first, so the first batch shows peak memory."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            batch = batches[-1]
            longest = lengths[batch[0]]
            fits = (len(batch) + 1) * longest <= batch_tokens
            dense = lengths[i] >= MIN_FILL * longest or longest - lengths[i] <= SMALL_PAD
            if fits and dense:
                batch.append(i)
                continue
        batches.append([i])
    return batches


def pad_right(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(int32 [B, longest] ids padded with 0 on the right, int32 [B] real lengths). Right padding
    is exact for a causal model read at each row's last real token: no row attends to padding."""
    lengths = np.array([len(r) for r in rows], dtype=np.int32)
    padded = np.zeros((len(rows), int(lengths.max())), dtype=np.int32)
    for i, row in enumerate(rows):
        padded[i, : lengths[i]] = row
    return padded, lengths
