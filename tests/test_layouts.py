"""Every published layout loads to the same vectors; quantized paths run and stay close."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from conftest import TINY

import mlx_jina
from mlx_jina.errors import InputError

QUERY = ["How fast does light travel in a vacuum?", "光在真空中的速度", "def f(x): return x"]


@pytest.fixture(scope="module")
def reference(tiny):
    return {t: tiny.encode(QUERY, task=t) for t in ("retrieval.query", "retrieval.passage")}


@pytest.mark.parametrize("folder,layout", [
    ("jina-v5-tiny", "hf-adapters"), ("jina-v5-tiny-mlx", "mlx-adapters"),
    ("jina-v5-tiny-retrieval", "hf-merged"), ("jina-v5-tiny-retrieval-mlx", "mlx-merged"),
])
def test_all_layouts_give_the_same_vectors(reference, folder, layout):
    model = mlx_jina.load(TINY / folder)
    assert model.info.layout == layout
    for task, expected in reference.items():
        cos = np.sum(model.encode(QUERY, task=task) * expected, axis=1)
        assert cos.min() >= 0.99999, (folder, task, cos)


def test_merged_checkpoint_refuses_other_tasks():
    model = mlx_jina.load(TINY / "jina-v5-tiny-retrieval")
    assert model.info.merged_adapter == "retrieval"
    with pytest.raises(InputError, match="not available in this merged checkpoint"):
        model.encode(["x"], task="text-matching")


@pytest.mark.parametrize("bits,floor", [(8, 0.999), (4, 0.95)])
def test_quantized_base_keeps_all_adapters(tiny, bits, floor):
    """One quantized base serves every task; adapters stay unmerged in float32."""
    quantized = mlx_jina.load(TINY / "jina-v5-tiny", quantize=bits)
    assert quantized.info.quantization == bits
    q_proj = quantized.model.layers[0].self_attn.q_proj
    assert q_proj["weight"].dtype == mx.uint32  # the base is quantized ...
    assert q_proj["lora_a"].dtype == q_proj["lora_b"].dtype == mx.float32  # ... its adapters are not
    for task in quantized.tasks:
        cos = np.sum(quantized.encode(QUERY, task=task) * tiny.encode(QUERY, task=task), axis=1)
        assert cos.min() >= floor, (bits, task, cos)


@pytest.mark.parametrize("bits,floor", [(8, 0.999), (4, 0.95)])
def test_prequantized_per_task_files_are_used(reference, bits, floor):
    model = mlx_jina.load(TINY / "jina-v5-tiny-retrieval-mlx", quantize=bits)
    assert model.info.weights_file == f"model-{bits}bit.safetensors"
    assert model.info.quantization == bits
    cos = np.sum(model.encode(QUERY, task="retrieval.query") * reference["retrieval.query"], axis=1)
    assert cos.min() >= floor, cos
