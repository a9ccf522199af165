"""The MLX encoder against the PyTorch reference (transformers Qwen3Model + PEFT, unmerged LoRA),
whose outputs weights/make_golden.py stored for the tiny checkpoint."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from conftest import unit

from mlx_jina.spec import package_spec

TASKS = list(package_spec().tasks)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_matches_reference(tiny, golden, golden_texts, task):
    got = tiny.encode(golden_texts, task=task)
    cos = np.sum(got * unit(golden[task]), axis=1)
    assert cos.min() >= 0.99999, cos


@pytest.mark.parametrize("task", ["retrieval.query", "retrieval.passage"])
def test_tokenization_with_prompt_matches_reference(tiny, golden, golden_texts, task):
    lengths = [len(ids) for ids in tiny.tokenize(golden_texts, [task] * len(golden_texts))]
    assert lengths == golden[f"{task}/lengths"].tolist()


def test_adapters_change_the_output(tiny, golden_texts):
    """Guards against silently running base weights: each adapter must move the vectors."""
    passage = tiny.encode(golden_texts, task="retrieval.passage")
    for task in ("text-matching", "classification", "clustering"):
        assert np.sum(passage * tiny.encode(golden_texts, task=task), axis=1).min() < 0.95


@pytest.fixture
def one_padded_batch(monkeypatch):
    """Let the planner put very different lengths in one padded batch (it normally splits them)."""
    monkeypatch.setattr("mlx_jina.batching.MIN_FILL", 0.0)


def test_mixed_task_batch_matches_reference_per_row(tiny, golden, golden_texts, one_padded_batch):
    texts = golden_texts * 2
    tasks = [TASKS[i % len(TASKS)] for i in range(len(texts))]
    got = tiny.encode(texts, task=tasks, batch_tokens=100_000)  # one forward pass, all tasks mixed
    for i, (text_index, task) in enumerate(zip(list(range(len(golden_texts))) * 2, tasks)):
        assert float(got[i] @ unit(golden[task][text_index])) >= 0.99999, (i, task)


def test_batch_invariance_alone_vs_padded_mixed_batch(tiny, golden_texts, one_padded_batch):
    tasks = [TASKS[i % len(TASKS)] for i in range(len(golden_texts))]
    together = tiny.encode(golden_texts, task=tasks, batch_tokens=100_000)
    for i, (text, task) in enumerate(zip(golden_texts, tasks)):
        alone = tiny.encode([text], task=task)
        assert np.abs(alone[0] - together[i]).max() <= 1e-5, i


def test_per_row_and_shared_adapter_modes_agree(tiny, golden_texts):
    shared = tiny.encode(golden_texts, task="clustering", adapter_mode="shared")
    per_row = tiny.encode(golden_texts, task="clustering", adapter_mode="per-row")
    assert np.abs(shared - per_row).max() <= 1e-5


@pytest.mark.parametrize("dims", [32, 64])
def test_matryoshka_slices_then_normalises(tiny, golden, golden_texts, dims):
    got = tiny.encode(golden_texts, task="retrieval.query", dimensions=dims)
    assert got.shape == (len(golden_texts), dims)
    assert np.sum(got * unit(golden["retrieval.query"][:, :dims]), axis=1).min() >= 0.99999


def test_unnormalised_output_is_the_raw_pooled_vector(tiny, golden, golden_texts):
    raw = tiny.encode(golden_texts, task="text-matching", normalized=False)
    np.testing.assert_allclose(raw, golden["text-matching"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("task", ["retrieval.query", "classification"])
def test_fused_merged_mode_matches_reference(tiny, golden, golden_texts, task):
    got = tiny.encode(golden_texts, task=task, adapter_mode="merged")
    assert np.sum(got * unit(golden[task]), axis=1).min() >= 0.99999


def test_blockwise_attention_for_long_inputs_matches_reference(tiny, golden, golden_texts, monkeypatch):
    monkeypatch.setattr("mlx_jina.model.qwen3.ATTENTION_SCORE_BUDGET", 1024)  # 128-row query blocks (the floor)
    monkeypatch.setattr("mlx_jina.model.qwen3.CPU_QUERY_BLOCK", 10**6)  # whatever the device
    got = tiny.encode(golden_texts, task="retrieval.passage")
    assert np.sum(got * unit(golden["retrieval.passage"]), axis=1).min() >= 0.99999
    query_rows = []
    original = mx.fast.scaled_dot_product_attention
    monkeypatch.setattr(mx.fast, "scaled_dot_product_attention",
                        lambda q, *a, **k: query_rows.append(q.shape[2]) or original(q, *a, **k))
    tiny.encode([golden_texts[-1]], task="retrieval.passage")
    assert max(query_rows) == 128 and len(query_rows) > 2  # the long text really went through query blocks
