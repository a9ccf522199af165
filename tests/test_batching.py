from __future__ import annotations

import random

import numpy as np

from mlx_jina.batching import MIN_FILL, plan_batches


def test_plan_covers_every_index_once_within_budget():
    rng = random.Random(7)
    lengths = [rng.choice([3, 10, 40, 120, 500, 2000]) + rng.randrange(5) for _ in range(300)]
    batches = plan_batches(lengths, batch_tokens=4096)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 4096
        assert longest == lengths[batch[0]]


def test_plan_keeps_padding_small():
    lengths = [500] * 4 + [20] * 50
    batches = plan_batches(lengths, batch_tokens=100_000)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded == sum(lengths)  # long and short rows never share a batch
    assert all(min(lengths[i] for i in b) >= MIN_FILL * max(lengths[i] for i in b) for b in batches)


def test_over_budget_sequence_gets_its_own_batch():
    assert plan_batches([5000, 10, 10], batch_tokens=1000) == [[0], [1, 2]]


def test_results_come_back_in_input_order(tiny):
    texts = ["short", "a somewhat longer sentence about light and vacuum " * 5, "mid length text here", "x y"]
    forward = tiny.encode(texts, task="retrieval.passage")
    order = [2, 0, 3, 1]
    shuffled = tiny.encode([texts[i] for i in order], task="retrieval.passage")
    np.testing.assert_allclose(shuffled, forward[order], atol=1e-5)
