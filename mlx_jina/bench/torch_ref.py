"""The reference path users would pick instead, on the same weights and inputs: the model card's
transformers `Qwen3Model` + PEFT with every adapter loaded *unmerged*, one active adapter per call,
right-padded batches of 32 sorted by length (sentence-transformers' defaults), float32 on CPU.

torch is imported only here, and this module only with `mlx-jina bench --compare torch`.
"""

from __future__ import annotations

from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_jina.bench.workloads import Workload
from mlx_jina.embedder import Embedder
from mlx_jina.errors import MlxJinaError
from mlx_jina.model.lora import lora_rank
from mlx_jina.spec import package_spec

BATCH_SIZE = 32  # SentenceTransformer.encode's default
PAD_ID = 0  # padded positions are masked out, so any valid id works (the tiny test vocab has no 151643)


def reference_runner(embedder: Embedder) -> Callable[[Workload], np.ndarray]:
    """A callable embedding a workload with the PyTorch reference built from `embedder`'s weights."""
    try:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import Qwen3Config, Qwen3Model
    except ImportError as exc:
        raise MlxJinaError(f"--compare torch needs torch, transformers and peft ({exc}): "
                           "pip install torch transformers peft") from exc
    args, names = embedder.model.args, embedder.adapters
    if not names:
        raise MlxJinaError("--compare torch needs a checkpoint with separate adapters (not a merged one)")
    config = Qwen3Config(
        vocab_size=args.vocab_size, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
        num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
        num_key_value_heads=args.num_key_value_heads, head_dim=args.head_dim, rms_norm_eps=args.rms_norm_eps,
        rope_theta=args.rope_theta, max_position_embeddings=args.max_position_embeddings,
        tie_word_embeddings=True, attn_implementation="sdpa")
    base = Qwen3Model(config).float().eval()
    base.load_state_dict({k: torch.from_numpy(v) for k, v in float_base_weights(embedder.model).items()}, strict=True)
    banks = {path: (m["lora_a"], m["lora_b"]) for path, m in embedder.model.named_modules() if "lora_a" in m}
    rank = lora_rank(embedder.model)
    lora = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0,  # scale 1: B holds alpha/r
                      target_modules=list(package_spec().lora_targets))
    model = get_peft_model(base, lora, adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, lora)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for path, (lora_a, lora_b) in banks.items():
            layer = modules[f"base_model.model.{path}"]
            a, b = np.array(lora_a.astype(mx.float32)), np.array(lora_b.astype(mx.float32))
            for i, name in enumerate(names):  # PEFT stores A [r, in] and B [out, r]
                layer.lora_A[name].weight.copy_(torch.from_numpy(a[i].T.copy()))
                layer.lora_B[name].weight.copy_(torch.from_numpy(b[i].T.copy()))
    model.eval()

    def run(workload: Workload) -> np.ndarray:
        out = np.empty((len(workload.ids), args.hidden_size), dtype=np.float32)
        for adapter, rows in workload.groups(lambda t: embedder.tasks[t].adapter).items():
            model.set_adapter(adapter)
            rows = sorted(rows, key=lambda r: -len(workload.ids[r]))
            for start in range(0, len(rows), BATCH_SIZE):
                batch = rows[start: start + BATCH_SIZE]
                lengths = torch.tensor([len(workload.ids[r]) for r in batch])
                ids = torch.full((len(batch), int(lengths.max())), PAD_ID, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for j, r in enumerate(batch):
                    ids[j, : lengths[j]] = torch.tensor(workload.ids[r])
                    mask[j, : lengths[j]] = 1
                with torch.inference_mode():
                    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
                out[batch] = hidden[torch.arange(len(batch)), lengths - 1].float().numpy()
        return out

    return run


def float_base_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The base weights as float32 numpy arrays under transformers' Qwen3Model names (the MLX
    module names are the same); quantized layers are dequantized, LoRA banks left out."""
    out = {}
    for path, module in model.named_modules():
        prefix = f"{path}." if path else ""
        if isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding)):
            weight = mx.dequantize(module.weight, module.scales, module.biases, module.group_size, module.bits)
            out[f"{prefix}weight"] = weight
        elif isinstance(module, (nn.Linear, nn.Embedding, nn.RMSNorm)):
            out[f"{prefix}weight"] = module.weight
    return {k: np.array(v.astype(mx.float32)) for k, v in out.items()}


def torch_matmul_gflops(k: int, n: int, m: int, repeats: int = 5) -> float:
    """The same float32 GEMM as runner.mlx_matmul_gflops, in torch."""
    import torch

    from mlx_jina.bench.runner import best_gflops

    a, b = torch.randn(m, k), torch.randn(k, n)
    return best_gflops(lambda: a @ b, 2 * m * k * n, repeats)
