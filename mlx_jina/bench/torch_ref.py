"""The PyTorch peers, on the same weights as the MLX model: transformers `Qwen3Model` + PEFT with
every adapter loaded *unmerged*, one active adapter per call (the model card's path), or one
adapter merged into the base with PEFT's `merge_and_unload()` (what the vendor's per-task repos
and sentence-transformers on them run). float32 on CPU.

torch is imported inside the functions, which peers.build_peers calls after its package check
(float_base_weights needs no torch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_jina.bench.peers import PeerRun, padded_batches
from mlx_jina.bench.workloads import Workload
from mlx_jina.embedder import Embedder
from mlx_jina.errors import MlxJinaError
from mlx_jina.model.lora import lora_rank
from mlx_jina.spec import package_spec


def qwen3_config(args: Any, *, tied: bool) -> Any:
    """transformers' Qwen3Config of the same shape as MLX's ModelArgs (SDPA attention)."""
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
        num_key_value_heads=args.num_key_value_heads, head_dim=args.head_dim, rms_norm_eps=args.rms_norm_eps,
        rope_theta=args.rope_theta, max_position_embeddings=args.max_position_embeddings,
        tie_word_embeddings=tied, attn_implementation="sdpa")


def peft_model(embedder: Embedder, adapters: list[str]) -> Any:
    """transformers' Qwen3Model with `embedder`'s base weights and its LoRA pairs for `adapters`
    loaded into PEFT, unmerged, in eval mode."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Model

    args, rank = embedder.model.args, lora_rank(embedder.model)
    if not embedder.adapters or rank is None:
        raise MlxJinaError("--compare needs a checkpoint with separate adapters (not a merged one)")
    config = qwen3_config(args, tied=True)
    with torch.device("meta"):  # no memory for weights about to be replaced
        base = Qwen3Model(config)
    weights = {k: torch.from_numpy(v) for k, v in float_base_weights(embedder.model).items()}
    base.load_state_dict(weights, strict=True, assign=True)  # shares MLX's float32 buffers: no second copy
    base.rotary_emb = type(base.rotary_emb)(config=config)  # a buffer computed at init, not a weight
    lora = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0,  # scale 1: B holds alpha/r
                      target_modules=list(package_spec().lora_targets))
    model = get_peft_model(base, lora, adapter_name=adapters[0])
    for name in adapters[1:]:
        model.add_adapter(name, lora)
    modules = dict(model.named_modules())
    index = {name: embedder.adapters.index(name) for name in adapters}
    with torch.no_grad():
        for path, layer in embedder.model.named_modules():
            if "lora_a" not in layer:
                continue
            peft_layer = modules[f"base_model.model.{path}"]
            a, b = np.array(layer["lora_a"].astype(mx.float32)), np.array(layer["lora_b"].astype(mx.float32))
            for name, i in index.items():  # PEFT stores A [r, in] and B [out, r]
                peft_layer.lora_A[name].weight.copy_(torch.from_numpy(a[i].T.copy()))
                peft_layer.lora_B[name].weight.copy_(torch.from_numpy(b[i].T.copy()))
    return model.eval()


def merged_model(embedder: Embedder, adapter: str) -> Any:
    """A plain Qwen3Model with `adapter` merged into the base (PEFT's merge_and_unload). safe_merge
    writes the merged projections to new tensors: the base ones are MLX's memory."""
    return peft_model(embedder, [adapter]).merge_and_unload(safe_merge=True).eval()


def unmerged_runner(embedder: Embedder) -> PeerRun:
    """The model card's path: every adapter loaded, `set_adapter` per task group."""
    model = peft_model(embedder, list(embedder.adapters))
    return torch_runner(model, embedder, set_adapter=model.set_adapter)


def torch_runner(model: Any, embedder: Embedder,
                 set_adapter: Callable[[str], None] = lambda _: None) -> PeerRun:
    """A callable embedding a workload with a torch Qwen3Model: per adapter group, right-padded
    length-sorted batches, the last real token of each row (raw, as `Embedder.embed_ids`)."""
    import torch


    def run(workload: Workload) -> np.ndarray:
        out = np.empty((len(workload.ids), embedder.model.args.hidden_size), dtype=np.float32)
        for adapter, rows in workload.groups(lambda t: embedder.tasks[t].adapter).items():
            set_adapter(adapter)
            for batch, ids, mask, lengths in padded_batches(workload, rows):
                with torch.inference_mode():
                    output = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
                hidden = output.last_hidden_state
                out[batch] = hidden[torch.arange(len(batch)), torch.from_numpy(lengths - 1)].float().numpy()
        return out

    return run


def float_base_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The base weights as float32 numpy arrays under transformers' Qwen3Model names (the MLX
    module names are the same); quantized layers are dequantized, LoRA banks left out. float32
    weights come back as views of MLX's memory, not copies (1.8-2.4 GB saved per torch peer at
    the real size): never write into them."""
    out = {}
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            weight = mx.dequantize(module.weight, module.scales, module.biases, module.group_size, module.bits)
            out[f"{prefix}weight"] = weight
        elif isinstance(module, (nn.Linear, nn.Embedding, nn.RMSNorm)):
            out[f"{prefix}weight"] = module.weight
    return {k: np.asarray(v if v.dtype == mx.float32 else v.astype(mx.float32)) for k, v in out.items()}


def torch_matmul_gflops(k: int, n: int, m: int, repeats: int = 5) -> float:
    """The same float32 GEMM as runner.mlx_matmul_gflops, in torch."""
    import torch

    from mlx_jina.bench.runner import best_gflops

    a, b = torch.randn(m, k), torch.randn(k, n)
    return best_gflops(lambda: a @ b, 2 * m * k * n, repeats)
