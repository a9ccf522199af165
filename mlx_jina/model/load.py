"""Reading a local checkpoint folder in any published layout into a ready `Qwen3Encoder` and
its tokenizer (`hub.resolve` turns a model name into such a folder).

Layouts (see Package.toml and the spec):
- hf-adapters:  unprefixed base keys + adapters/<task>/         (jinaai/jina-embeddings-v5-text-small)
- mlx-adapters: `model.`-prefixed base keys + adapters/<task>/  (…-small-mlx)
- hf-merged / mlx-merged: one task pre-merged, no adapters/      (…-small-<task>[-mlx]); the MLX ones
  also ship pre-quantized `model-8bit.safetensors` / `model-4bit.safetensors`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from tokenizers import Tokenizer

from mlx_jina.errors import ModelLoadError
from mlx_jina.model.lora import attach_banks, read_adapter, stack_adapters
from mlx_jina.model.qwen3 import ModelArgs, Qwen3Encoder, projection_shapes
from mlx_jina.spec import package_spec

TOKENIZER_FILE = "tokenizer.json"

QUANTIZE_GROUP_SIZE = 64
_IGNORED_KEYS = re.compile(r"^(lm_head\.weight|.*rotary_emb\.inv_freq)$")


@dataclass
class LoadedCheckpoint:
    model: Qwen3Encoder
    layout: str
    weights_file: str
    adapters: tuple[str, ...]  # bank order for adapter ids; empty for merged checkpoints
    merged_adapter: str | None
    quantization: int | None  # bits of the base weights, None for float


def read_tokenizer(folder: Path) -> Tokenizer:
    """The checkpoint's tokenizer.json, with no padding or truncation (batching pads, and
    over-length input is the embedder's decision)."""
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise ModelLoadError(f"{folder} has no {TOKENIZER_FILE}")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def read_config(folder: Path) -> tuple[dict[str, Any], ModelArgs]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        return config, ModelArgs.from_config(config)
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} has no config.json: not a model checkpoint folder") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path} is not a usable Qwen3 config: {exc}") from exc


def load_checkpoint(
    folder: Path, *, quantize: int | None, dtype: mx.Dtype, merged_adapter: str | None = None
) -> LoadedCheckpoint:
    """Build the encoder from `folder`, with all adapters loaded (or the one merged into it)."""
    if quantize not in (None, 4, 8):
        raise ModelLoadError(f"quantize must be None, 8 or 4, not {quantize!r}")
    config, args = read_config(folder)
    has_adapters = (folder / "adapters").is_dir()
    weights_file = _weights_file(folder, quantize)
    weights, prefixed = _read_weights(folder / weights_file)
    layout = ("mlx" if prefixed else "hf") + ("-adapters" if has_adapters else "-merged")

    model = Qwen3Encoder(args)
    prequantized = _quantization_plan(weights, args)
    if prequantized:
        nn.quantize(model, class_predicate=lambda path, _: prequantized.get(path, False))
    _load_base(model, weights, dtype, folder / weights_file)
    if quantize and not prequantized:
        nn.quantize(model, group_size=QUANTIZE_GROUP_SIZE, bits=quantize,
                    class_predicate=lambda _, m: isinstance(m, (nn.Linear, nn.Embedding)))
    bits = quantize or (next(iter(prequantized.values()))["bits"] if prequantized else None)

    if has_adapters:
        names = package_spec().adapters
        _check_task_names(config, names, folder)
        shapes = lora_shapes(args)
        adapters = [read_adapter(folder / "adapters" / name, name, shapes) for name in names]
        attach_banks(model, stack_adapters(adapters, dtype))
        merged, adapter_names = None, names
    else:
        merged, adapter_names = merged_adapter or _merged_adapter_from_path(folder), ()
    mx.eval(model.parameters())
    return LoadedCheckpoint(model, layout, weights_file, adapter_names, merged, bits)


def _weights_file(folder: Path, quantize: int | None) -> str:
    if quantize and (folder / f"model-{quantize}bit.safetensors").is_file():
        return f"model-{quantize}bit.safetensors"
    if (folder / "model.safetensors").is_file():
        return "model.safetensors"
    raise ModelLoadError(f"{folder} has no model.safetensors")


def _read_weights(path: Path) -> tuple[dict[str, mx.array], bool]:
    """Weights with unprefixed keys, and whether the file used MLX's `model.` prefix."""
    try:
        weights = mx.load(str(path))
    except Exception as exc:  # safetensors parse errors have no common type
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    weights = {k: v for k, v in weights.items() if not _IGNORED_KEYS.match(k)}
    prefixed = bool(weights) and all(k.startswith("model.") for k in weights)
    if prefixed:
        weights = {k.removeprefix("model."): v for k, v in weights.items()}
    return weights, prefixed


def _quantization_plan(weights: dict[str, mx.array], args: ModelArgs) -> dict[str, dict[str, int]]:
    """For pre-quantized files: module path -> {bits, group_size}, inferred from tensor shapes."""
    plan = {}
    fan_ins = {path: shape[0] for path, shape in projection_shapes(args).items()}
    for key, scales in weights.items():
        if not key.endswith(".scales"):
            continue
        module = key.removesuffix(".scales")
        packed = weights[f"{module}.weight"]
        fan_in = fan_ins.get(module, args.hidden_size)  # the embedding table is [vocab, hidden]
        bits = packed.shape[-1] * 32 // fan_in
        plan[module] = {"bits": bits, "group_size": fan_in // scales.shape[-1]}
    return plan


def lora_shapes(args: ModelArgs) -> dict[str, tuple[int, int]]:
    """module path -> (in, out) of every projection an adapter may target (Package.toml's lora_targets)."""
    targets = set(package_spec().lora_targets)
    return {path: shape for path, shape in projection_shapes(args).items() if path.rsplit(".", 1)[-1] in targets}


def _load_base(model: Qwen3Encoder, weights: dict[str, mx.array], dtype: mx.Dtype, path: Path) -> None:
    """Strict: every parameter present with the right shape, nothing unexpected (mlx-lm's
    strict=False would silently keep random weights)."""
    expected = dict(tree_flatten(model.parameters()))
    missing = sorted(expected.keys() - weights.keys())
    unexpected = sorted(weights.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & weights.keys() if expected[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        details = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                   f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                   f"shape mismatch for {wrong[:3]}" if wrong else ""]
        raise ModelLoadError(f"{path} does not match config.json: " + "; ".join(d for d in details if d))
    cast = {k: v if v.dtype in (mx.uint32, mx.uint8) else v.astype(dtype) for k, v in weights.items()}
    model.load_weights(list(cast.items()), strict=True)


def _check_task_names(config: dict[str, Any], adapters: tuple[str, ...], folder: Path) -> None:
    declared = config.get("task_names")
    if declared is not None and set(adapters) - set(declared):
        raise ModelLoadError(f"{folder}/config.json task_names {declared} lack {sorted(set(adapters) - set(declared))}")


def _merged_adapter_from_path(folder: Path) -> str:
    """A per-task repo names its task: …-small-retrieval, …-small-text-matching-mlx, hub cache
    folders (models--jinaai--…-retrieval/snapshots/<rev>) included."""
    for part in reversed(folder.resolve().parts):
        for adapter in package_spec().adapters:
            if re.search(rf"-{re.escape(adapter)}(-mlx)?$", part):
                return adapter
    raise ModelLoadError(
        f"{folder} has no adapters/ folder, so it is a per-task merged checkpoint, but its task cannot be "
        f"told from its name; pass adapter= one of {list(package_spec().adapters)}"
    )
