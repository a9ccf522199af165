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
from typing import TYPE_CHECKING, Any, cast

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
        tensors = cast(dict[str, mx.array], mx.load(str(weights_path)))  # .safetensors: always a dict
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
    """Per module, stack every adapter's pair along a leading axis in matmul orientation:
    Aᵀ [T, in, r] and (s·B)ᵀ [T, r, out], zero-padding ranks and modules an adapter does not touch
    (zeros add exactly nothing)."""
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
            a_rows.append(mx.pad(a.astype(mx.float32), [(0, pad), (0, 0)]).T)
            b_rows.append(mx.pad(b.astype(mx.float32) * adapter.scale, [(0, 0), (0, pad)]).T)
        stacked[module] = (mx.stack(a_rows).astype(dtype), mx.stack(b_rows).astype(dtype))
    return stacked


#: One adapter for the whole batch (int), one per row (int array [B]), or none (base or fused weights).
AdapterChoice = int | mx.array | None


def per_row_lora(x: mx.array, lora_a: mx.array, lora_b: mx.array, rows: mx.array) -> mx.array:
    """x [B, L, in] -> [B, L, out]: row i through adapter rows[i] of the stacked banks.
    `mx.gather_mm` indexes the banks inside the matmul, with no per-row copies; on this CPU it
    measured 0.65-2.3x the speed of gathering copies first, no consistent winner
    (benchmarks/lora_per_row.py, BENCHMARKS.md §3)."""
    return mx.gather_mm(mx.gather_mm(x, lora_a, rhs_indices=rows), lora_b, rhs_indices=rows)


def _with_lora(layer: nn.Module, y: mx.array, x: mx.array, adapter: AdapterChoice) -> mx.array:
    if adapter is None or "lora_a" not in layer:
        return y
    lora_a, lora_b = layer["lora_a"], layer["lora_b"]
    if isinstance(adapter, int):  # shared by the batch: two plain matmuls
        return y + (x @ lora_a[adapter]) @ lora_b[adapter]
    return y + per_row_lora(x, lora_a, lora_b, adapter)


class LoRALinear(nn.Linear):
    """nn.Linear that may carry the stacked task adapters (`lora_a` [T, in, r], `lora_b`
    [T, r, out], scale folded in) and adds the chosen one's term unmerged: y = W x + (x Aᵀ) (s·B)ᵀ.
    A subclass rather than a wrapper (mlx-lm's LoRALinear wraps), so checkpoint keys stay
    `...q_proj.weight` and load 1:1; quantizing it keeps the adapters in full precision."""

    def __call__(self, x: mx.array, adapter: AdapterChoice = None) -> mx.array:
        return _with_lora(self, super().__call__(x), x, adapter)

    def to_quantized(self, group_size: int | None = None, bits: int | None = None, mode: str = "affine",
                     quantize_input: bool = False) -> nn.Module:
        if quantize_input:
            raise ValueError("LoRALinear quantizes weights only")
        # None = the mode's default, as in nn.Linear.to_quantized (mlx's stub says int)
        quantized = QuantizedLoRALinear.from_linear(self, group_size, bits, mode)  # type: ignore[arg-type]
        for name in ("lora_a", "lora_b"):
            if name in self:
                quantized[name] = self[name]
        return quantized


class QuantizedLoRALinear(nn.QuantizedLinear):
    """The quantized base of a LoRALinear; the adapters stay in full precision."""

    def __call__(self, x: mx.array, adapter: AdapterChoice = None) -> mx.array:
        return _with_lora(self, super().__call__(x), x, adapter)


def attach_banks(model: nn.Module, stacked: dict[str, tuple[mx.array, mx.array]]) -> None:
    """Give each projection (by module path, e.g. "layers.0.self_attn.q_proj") its stacked banks."""
    modules = dict(model.named_modules())
    for module_path, (lora_a, lora_b) in stacked.items():
        layer = modules[module_path]
        if not isinstance(layer, (LoRALinear, QuantizedLoRALinear)):
            raise TypeError(f"{module_path} is a {type(layer).__name__}, not a LoRA-carrying linear layer")
        layer.lora_a, layer.lora_b = lora_a, lora_b


def lora_rank(model: nn.Module) -> int | None:
    """The (padded) rank of the resident adapters, None when there are none."""
    for _, layer in model.named_modules():
        if "lora_a" in layer:
            return int(layer["lora_a"].shape[-1])
    return None


def merged_copy(model: Qwen3Encoder, adapter: int) -> Qwen3Encoder:
    """A new encoder equal to `model` with adapter number `adapter` merged in (W' = W + s·B A in
    float32; float bases only). Everything but the projections is shared, not copied; the
    projection copies cost ~1.8 GB in float32 for the real model."""
    if any(isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules()):
        raise ValueError("cannot merge adapters into a quantized base; use adapter_mode 'shared' or 'per-row'")
    flat = cast(list[tuple[str, mx.array]], tree_flatten(model.parameters()))
    weights = {k: v for k, v in flat if not k.endswith((".lora_a", ".lora_b"))}
    for path, layer in model.named_modules():
        if "lora_a" in layer:
            base = weights[f"{path}.weight"]
            delta = (layer["lora_a"][adapter].astype(mx.float32) @ layer["lora_b"][adapter].astype(mx.float32)).T
            weights[f"{path}.weight"] = (base.astype(mx.float32) + delta).astype(base.dtype)
    merged = type(model)(model.args)
    merged.load_weights(list(weights.items()), strict=True)
    mx.eval(merged.parameters())
    return merged
