"""The reranker's reference path: the Qwen3-Reranker model card's transformers code on the same
weights and prompts. A `Qwen3ForCausalLM` in float32 on CPU gets the MLX reranker's weights
(dequantized if quantized); each call left-pads the full prompts into one batch (the card's
`tokenizer.pad`), runs the whole model, takes the last position's logits, keeps the `no`/`yes`
columns, log_softmax -> P(yes) (the card's `compute_logits`).

The card computes the logits of every position over the whole vocabulary; that is its cost and is
kept (at the 0.6B shape the [151669, 1024] projection is about a quarter of the FLOPs per token).
Only so that it fits in memory (the card's one batch of 40 x 800-token prompts would need 19 GiB of
logits), the prompts are split into equal batches holding at most LOGITS_BUDGET bytes of logits each.

An untied output projection (8B, or a quantized body) is built with zeros in every row but `no`
and `yes`: those rows are all the score reads, and the matmul costs the same. The float32 weights
are MLX's own buffers, shared (bench/torch_ref.float_base_weights), not copied.

torch is imported only here, and this module only with `mlx-jina bench --compare torch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from mlx_jina.bench.rerank_workloads import RerankWorkload
from mlx_jina.bench.torch_ref import float_base_weights, qwen3_config
from mlx_jina.errors import MlxJinaError
from mlx_jina.rerank import Reranker

LOGITS_BUDGET = 2 * 2**30  # bytes of float32 [batch, length, vocab] logits per forward pass
PAD_ID = 151643  # the card's tokenizer pads with <|endoftext|>; padded positions are masked out anyway


def card_runner(reranker: Reranker) -> Callable[[RerankWorkload], np.ndarray]:
    """A callable scoring a workload's prompts with the card's transformers path on `reranker`'s weights."""
    try:
        import torch
        from transformers import Qwen3ForCausalLM
    except ImportError as exc:
        raise MlxJinaError(f"--compare torch needs torch and transformers ({exc}): pip install torch transformers") \
            from exc
    args, spec = reranker.model.args, reranker.spec
    no_id, yes_id = reranker.tokenizer.token_to_id(spec.no_token), reranker.tokenizer.token_to_id(spec.yes_token)
    if no_id is None or yes_id is None:
        raise MlxJinaError(f"the reranker's tokenizer has no {spec.no_token!r} or {spec.yes_token!r} token")
    body = {f"model.{k}": v for k, v in float_base_weights(reranker.model).items()}
    head = np.array(reranker.head.astype(mx.float32))
    embedding = body["model.embed_tokens.weight"]
    tied = bool(np.array_equal(embedding[[no_id, yes_id]], head))
    if tied:
        lm_head = embedding
    else:
        lm_head = np.zeros_like(embedding)
        lm_head[[no_id, yes_id]] = head
    config = qwen3_config(args, tied=tied)
    with torch.device("meta"):  # no memory for weights about to be replaced
        model = Qwen3ForCausalLM(config)
    state = {k: torch.from_numpy(v) for k, v in body.items()}
    state["lm_head.weight"] = state["model.embed_tokens.weight"] if tied else torch.from_numpy(lm_head)
    model.load_state_dict(state, strict=True, assign=True)  # shares MLX's float32 buffers: no second copy
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # a buffer computed at init
    model.eval()

    def run(workload: RerankWorkload) -> np.ndarray:
        longest = max(len(r) for r in workload.rows)
        most = max(1, LOGITS_BUDGET // (longest * args.vocab_size * 4))
        size = math.ceil(workload.candidates / math.ceil(workload.candidates / most))
        scores = []
        for start in range(0, workload.candidates, size):
            batch = workload.rows[start: start + size]
            width = max(len(r) for r in batch)
            ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for j, row in enumerate(batch):  # left padding, as the card's tokenizer(padding_side='left')
                ids[j, width - len(row):] = torch.tensor(row)
                mask[j, width - len(row):] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits[:, -1, :]
                pair = torch.stack([logits[:, no_id], logits[:, yes_id]], dim=1)
                scores.append(torch.nn.functional.log_softmax(pair, dim=1)[:, 1].exp().numpy())
        return np.concatenate(scores).astype(np.float32)

    return run
