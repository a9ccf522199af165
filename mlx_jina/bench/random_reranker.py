"""A Qwen3-Reranker-0.6B of the exact published shape with random weights, in memory, for timing
when the real weights are not on this machine (speed does not depend on the values).

The shape is the published config.json of Qwen/Qwen3-Reranker-0.6B (a plain Qwen3ForCausalLM:
28 layers, hidden 1024, 16 query / 8 key-value heads of 128, MLP 3072, tied embeddings over the
151,669-token vocabulary). Tied like the real model: the `no`/`yes` head rows are rows of the
embedding, so a reference built from these weights (bench/torch_rerank_ref.py) scores the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlx_jina.bench.random_weights import SEED, real_tokenizer
from mlx_jina.model.load import QUANTIZE_GROUP_SIZE
from mlx_jina.model.qwen3 import ModelArgs, Qwen3Encoder
from mlx_jina.rerank import Reranker
from mlx_jina.spec import package_spec

QWEN3_RERANKER_06B_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen3ForCausalLM"], "hidden_size": 1024, "num_hidden_layers": 28, "intermediate_size": 3072,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-6,
    "vocab_size": 151669, "rope_theta": 1000000, "max_position_embeddings": 40960, "tie_word_embeddings": True,
    "hidden_act": "silu", "attention_bias": False,
}


def random_reranker(*, layers: int | None = None, dtype: mx.Dtype = mx.float32,
                    quantize: int | None = None) -> Reranker:
    """A Reranker of the real 0.6B shape with random weights. layers: keep only the first N of the
    28 (per-layer costs, in a short benchmark run); quantize: 8 or 4 bits for the body, as
    load_reranker does (the head rows stay in `dtype`)."""
    mx.random.seed(SEED)
    config = dict(QWEN3_RERANKER_06B_CONFIG, num_hidden_layers=layers or QWEN3_RERANKER_06B_CONFIG["num_hidden_layers"])
    body = Qwen3Encoder(ModelArgs.from_config(config))  # MLX's default init: scaled uniform, normal embeddings
    body.set_dtype(dtype)
    tokenizer = real_tokenizer()
    spec = package_spec().reranker
    rows = [tokenizer.token_to_id(token) for token in (spec.no_token, spec.yes_token)]
    head = body.embed_tokens.weight[mx.array(rows)]  # tied, like the published 0.6B
    if quantize:
        nn.quantize(body, group_size=QUANTIZE_GROUP_SIZE, bits=quantize,
                    class_predicate=lambda _, m: isinstance(m, (nn.Linear, nn.Embedding)))
    mx.eval(body.parameters(), head)
    return Reranker(body, head, tokenizer, model_id="random weights, Qwen3-Reranker-0.6B shape", revision=None,
                    folder=Path("."), dtype=dtype, quantization=quantize, weights_file="(random weights in memory)")
