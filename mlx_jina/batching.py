"""Packing sequences into forward passes: sort by length, then fill each batch up to a token
budget counted with padding, so padding waste stays small and memory stays bounded."""

from __future__ import annotations


def plan_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches with len(batch) * longest <= batch_tokens (a single sequence
    over the budget gets a batch of its own). Longest first, so the first batch shows peak memory."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
