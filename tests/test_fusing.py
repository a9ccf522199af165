"""Fusing is explicit: results depend only on the call, a fused copy exists only after fuse()
and serves only its own adapter; adapter_mode="merged" fuses for its call alone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY

import mlx_jina
from mlx_jina.errors import InputError

TEXTS = ["How fast does light travel?", "Brot backen am Sonntag", "光速"]
MIXED = ["retrieval.query", "clustering", "text-matching"]


@pytest.fixture()
def embedder():
    return mlx_jina.load(TINY / "jina-v5-tiny")  # its own: fusing must not leak into the shared fixture


def test_merged_calls_leave_no_state(embedder):
    before = embedder.encode(TEXTS, task="retrieval.query")
    merged = embedder.encode(TEXTS, task="retrieval.query", adapter_mode="merged")
    assert embedder.fused is None
    after = embedder.encode(TEXTS, task="retrieval.query")
    np.testing.assert_array_equal(after, before)  # bit-identical: still the unfused path
    assert not np.array_equal(merged, before)  # (so the check above could tell the two apart)
    assert np.abs(merged - before).max() < 1e-5


def test_a_fused_copy_serves_only_its_adapter(embedder):
    unfused = {t: embedder.encode(TEXTS, task=t) for t in ("retrieval.passage", "clustering")}
    mixed = embedder.encode(TEXTS, task=MIXED)
    merged = embedder.encode(TEXTS, task="retrieval.passage", adapter_mode="merged")
    embedder.fuse("retrieval.query")
    assert embedder.fused == "retrieval"
    # same adapter, other prompt: runs the fused copy, exactly what a merged call computes
    np.testing.assert_array_equal(embedder.encode(TEXTS, task="retrieval.passage"), merged)
    np.testing.assert_array_equal(embedder.encode(TEXTS, task="clustering"), unfused["clustering"])
    np.testing.assert_array_equal(embedder.encode(TEXTS, task=MIXED), mixed)
    np.testing.assert_array_equal(embedder.encode(TEXTS, task="retrieval.passage", adapter_mode="shared"),
                                  unfused["retrieval.passage"])
    embedder.unfuse()
    assert embedder.fused is None
    np.testing.assert_array_equal(embedder.encode(TEXTS, task="retrieval.passage"), unfused["retrieval.passage"])


def test_fuse_replaces_the_previous_copy(embedder):
    embedder.fuse("retrieval")  # adapter names work too
    embedder.fuse("clustering")
    assert embedder.fused == "clustering"


def test_fuse_refuses_what_it_cannot_do(embedder, tiny_path):
    with pytest.raises(InputError, match="not a task of this checkpoint"):
        embedder.fuse("separation")
    quantized = mlx_jina.load(tiny_path, quantize=8)
    with pytest.raises(InputError, match="needs a float base"):
        quantized.fuse("clustering")
    assert quantized.fused is None


def test_a_merged_checkpoint_is_already_fused():
    merged = mlx_jina.load(TINY / "jina-v5-tiny-retrieval")
    before = merged.encode(TEXTS, task="retrieval.query")
    merged.fuse("retrieval.query")
    np.testing.assert_array_equal(merged.encode(TEXTS, task="retrieval.query"), before)
    with pytest.raises(InputError, match="not a task of this checkpoint"):
        merged.fuse("clustering")
