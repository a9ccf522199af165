"""Fused single-task mode: a copy of the encoder with one adapter merged into the projections
(W' = W + s·B A, computed in float32), so a single-task workload runs plain matmuls with no LoRA
term at all. Everything but the projections (embeddings, norms) is shared, not copied; the
projection copies cost ~1.8 GB in float32 for the real model, hence one cached adapter at a time.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlx_jina.model import Qwen3Encoder


def merged_copy(model: Qwen3Encoder, adapter: int) -> Qwen3Encoder:
    """A new encoder equal to `model` with adapter number `adapter` merged in (float bases only)."""
    if any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules()):
        raise ValueError("cannot merge adapters into a quantized base; use adapter_mode 'shared' or 'per-row'")
    weights = {k: v for k, v in tree_flatten(model.parameters()) if ".lora." not in k}
    for path, module in model.named_modules():
        for proj, bank in getattr(module, "lora", {}).items():
            key = f"{path}.{proj}.weight"
            base = weights[key]
            delta = bank.b[adapter].astype(mx.float32) @ bank.a[adapter].astype(mx.float32)
            weights[key] = (base.astype(mx.float32) + delta).astype(base.dtype)
    merged = Qwen3Encoder(model.args)
    merged.load_weights(list(weights.items()), strict=True)
    mx.eval(merged.parameters())
    return merged
