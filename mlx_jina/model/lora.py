"""The task LoRA adapters: reading PEFT folders (`adapters/<task>/adapter_config.json` +
`adapter_model.safetensors`), stacking them into per-projection banks, and fusing one into a copy.

Every problem is an error naming the file: a missing or malformed adapter must never silently
leave the base weights in charge (vLLM's loader does exactly that).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlx_jina.errors import ModelLoadError

if TYPE_CHECKING:
    from mlx_jina.model.qwen3 import Qwen3Encoder

# base_model.model.[model.]layers.3.self_attn.q_proj.lora_A[.default].weight
_KEY = re.compile(
    r"^base_model\.model\.(?:model\.)?(layers\.\d+\.(?:self_attn|mlp)\.\w+_proj)\.lora_([AB])(?:\.[\w-]+)?\.weight$"
)


@dataclass(frozen=True)
class Adapter:
    name: str
    rank: int
    scale: float  # lora_alpha / r (or / sqrt(r) with rslora)
    pairs: dict[str, tuple[mx.array, mx.array]]  # module path -> (A [r, in], B [out, r])


def read_adapter(folder: Path, name: str, shapes: dict[str, tuple[int, int]]) -> Adapter:
    """Read and validate one adapter against `shapes` (module path -> (in, out)) of the base model."""
    config_path, weights_path = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ModelLoadError(f"adapter {name!r}: {path} is missing (refusing to fall back to base weights)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        rank, alpha = int(config["r"]), float(config["lora_alpha"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"adapter {name!r}: {config_path} is not a valid LoRA config ({exc!r})") from exc
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
        raise ModelLoadError(f"adapter {name!r}: only plain LoRA is supported, {config_path} says "
                             f"peft_type={config.get('peft_type')!r} use_dora={config.get('use_dora')!r}")
    scale = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
    try:
        tensors = mx.load(str(weights_path))
    except Exception as exc:  # safetensors parse errors have no common type
        raise ModelLoadError(f"adapter {name!r}: cannot read {weights_path}: {exc}") from exc

    halves: dict[str, dict[str, mx.array]] = {}
    for key, value in tensors.items():
        match = _KEY.match(key)
        if not match or match.group(1) not in shapes:
            raise ModelLoadError(f"adapter {name!r}: unexpected tensor {key!r} in {weights_path}")
        halves.setdefault(match.group(1), {})[match.group(2)] = value
    targets = _targets(config, shapes)
    missing = sorted(targets - halves.keys())
    if missing or not halves:
        raise ModelLoadError(f"adapter {name!r}: {weights_path} lacks LoRA weights for "
                             f"{len(missing)} targeted modules, e.g. {missing[:3]}")
    pairs = {}
    for module, ab in halves.items():
        fan_in, fan_out = shapes[module]
        a, b = ab.get("A"), ab.get("B")
        if a is None or b is None or a.shape != (rank, fan_in) or b.shape != (fan_out, rank):
            raise ModelLoadError(
                f"adapter {name!r}: {module} has lora_A {None if a is None else a.shape} / lora_B "
                f"{None if b is None else b.shape}, expected {(rank, fan_in)} / {(fan_out, rank)}"
            )
        pairs[module] = (a, b)
    return Adapter(name, rank, scale, pairs)


def _targets(config: dict[str, Any], shapes: dict[str, tuple[int, int]]) -> set[str]:
    """Module paths the adapter config says it covers."""
    targets = config.get("target_modules") or []
    if isinstance(targets, str):
        pattern = re.compile(targets)
        return {m for m in shapes if pattern.fullmatch(m)}
    return {m for m in shapes if m.rsplit(".", 1)[-1] in set(targets)}


def stack_adapters(adapters: list[Adapter], dtype: mx.Dtype) -> dict[str, tuple[mx.array, mx.array]]:
    """Per module, stack every adapter's (A, s·B) along a leading axis, zero-padding ranks and
    modules an adapter does not touch (zeros add exactly nothing)."""
    rank = max(a.rank for a in adapters)
    modules = sorted({m for a in adapters for m in a.pairs})
    stacked = {}
    for module in modules:
        some_a, some_b = next(a.pairs[module] for a in adapters if module in a.pairs)
        a_rows, b_rows = [], []
        for adapter in adapters:
            a, b = adapter.pairs.get(module, (mx.zeros((adapter.rank, some_a.shape[1])),
                                              mx.zeros((some_b.shape[0], adapter.rank))))
            pad = rank - adapter.rank
            a = mx.pad(a.astype(mx.float32), [(0, pad), (0, 0)])
            b = mx.pad(b.astype(mx.float32) * adapter.scale, [(0, 0), (0, pad)])
            a_rows.append(a)
            b_rows.append(b)
        stacked[module] = (mx.stack(a_rows).astype(dtype), mx.stack(b_rows).astype(dtype))
    return stacked


class LoRABank(nn.Module):
    """The LoRA pairs of all loaded adapters for one projection, stacked: row i is adapter i.

    a: [T, r, in], b: [T, out, r] with the adapter's alpha/r scale already folded into b.
    """

    def __init__(self, a: mx.array, b: mx.array):
        super().__init__()
        self.a = a
        self.b = b

    def __call__(self, x: mx.array, adapter: int | mx.array) -> mx.array:
        if isinstance(adapter, int):  # shared by the batch: two plain matmuls
            return (x @ self.a[adapter].T) @ self.b[adapter].T
        a = self.a[adapter].swapaxes(1, 2)  # [B, in, r]
        b = self.b[adapter].swapaxes(1, 2)  # [B, r, out]
        return (x @ a) @ b


def attach_banks(model: nn.Module, stacked: dict[str, tuple[mx.array, mx.array]]) -> None:
    """Give each projection (by module path, e.g. "layers.0.self_attn.q_proj") its stacked bank."""
    modules = dict(model.named_modules())
    for module_path, (a, b) in stacked.items():
        parent_path, proj = module_path.rsplit(".", 1)
        modules[parent_path].lora[proj] = LoRABank(a, b)


def merged_copy(model: Qwen3Encoder, adapter: int) -> Qwen3Encoder:
    """A new encoder equal to `model` with adapter number `adapter` merged in (W' = W + s·B A in
    float32; float bases only). Everything but the projections is shared, not copied; the
    projection copies cost ~1.8 GB in float32 for the real model."""
    if any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules()):
        raise ValueError("cannot merge adapters into a quantized base; use adapter_mode 'shared' or 'per-row'")
    weights = {k: v for k, v in tree_flatten(model.parameters()) if ".lora." not in k}
    for path, module in model.named_modules():
        for proj, bank in getattr(module, "lora", {}).items():
            key = f"{path}.{proj}.weight"
            base = weights[key]
            delta = bank.b[adapter].astype(mx.float32) @ bank.a[adapter].astype(mx.float32)
            weights[key] = (base.astype(mx.float32) + delta).astype(base.dtype)
    merged = type(model)(model.args)
    merged.load_weights(list(weights.items()), strict=True)
    mx.eval(merged.parameters())
    return merged
