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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

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
_IGNORED_KEYS = re.compile(r"^.*rotary_emb\.inv_freq$")
SHARD_INDEX = "model.safetensors.index.json"


@dataclass
class LoadedCheckpoint:
    model: Qwen3Encoder
    layout: str
    weights_file: str
    adapters: tuple[str, ...]  # bank order for adapter ids; empty for merged checkpoints
    merged_adapter: str | None
    quantization: int | None  # bits of the base weights, None for float


def compute_dtype(name: str | None) -> mx.Dtype:
    """The dtype to compute in: `name`, else float32 on the CPU and bfloat16 on a GPU."""
    name = name or ("float32" if mx.default_device() == mx.cpu else "bfloat16")
    if name not in ("float32", "float16", "bfloat16"):
        raise ModelLoadError(f"dtype {name!r} is not one of float32, float16, bfloat16")
    return getattr(mx, name)


def read_tokenizer(folder: Path) -> Tokenizer:
    """The checkpoint's tokenizer.json, with no padding or truncation (batching pads, and
    over-length input is the embedder's decision)."""
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise ModelLoadError(f"{folder} has no {TOKENIZER_FILE}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise ModelLoadError(f"{path} is not a valid tokenizer file: {exc}") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def token_counts(tokenizer: Tokenizer, texts: Sequence[str]) -> list[int]:
    """Token counts of raw texts, special tokens included, in one batch call (without the
    character offsets, which counting never reads and which cost a quarter of the time)."""
    return [len(e) for e in tokenizer.encode_batch_fast(list(texts), add_special_tokens=True)]


def read_config(folder: Path) -> tuple[dict[str, Any], ModelArgs]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        return config, ModelArgs.from_config(config)
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} has no config.json: not a model checkpoint folder") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path} is not a usable Qwen3 config: {exc}") from exc


@dataclass
class LoadedBase:
    """The decoder body of a checkpoint folder, before any adapters."""

    config: dict[str, Any]
    model: Qwen3Encoder
    weights_file: str  # model.safetensors, a pre-quantized variant, or "N shards of model.safetensors.index.json"
    prefixed: bool  # the file used the `model.` key prefix (MLX and transformers causal-LM layouts)
    quantization: int | None  # bits of the base weights, None for float
    head: mx.array | None  # the requested output-projection rows [rows, hidden], float


def load_base(folder: Path, *, quantize: int | None, dtype: mx.Dtype,
              head_rows: Sequence[int] | None = None) -> LoadedBase:
    """Read config.json and the weights (one file or shards) into a `Qwen3Encoder`, quantized if
    asked. head_rows: also return these rows of the output projection (`lm_head.weight`, or the
    embedding when config.json ties them), taken before quantizing, so a causal LM's few needed
    logits never need the whole [vocab, hidden] matrix."""
    if quantize not in (None, 4, 8):
        raise ModelLoadError(f"quantize must be None, 8 or 4, not {quantize!r}")
    config, args = read_config(folder)
    weights_file, files = _weights_files(folder, quantize)
    weights, head_weights, prefixed = _read_weights(files)
    head = None if head_rows is None else _head_rows(config, weights, head_weights, list(head_rows), dtype, folder)

    model = Qwen3Encoder(args)
    prequantized = _quantization_plan(weights, args)
    if prequantized:
        nn.quantize(model, class_predicate=lambda path, _: prequantized.get(path, False))
    _load_base(model, weights, dtype, folder / weights_file)
    if quantize and not prequantized:
        nn.quantize(model, group_size=QUANTIZE_GROUP_SIZE, bits=quantize,
                    class_predicate=lambda _, m: isinstance(m, (nn.Linear, nn.Embedding)))
    bits = quantize or (next(iter(prequantized.values()))["bits"] if prequantized else None)
    return LoadedBase(config, model, weights_file, prefixed, bits, head)


def load_checkpoint(
    folder: Path, *, quantize: int | None, dtype: mx.Dtype, merged_adapter: str | None = None
) -> LoadedCheckpoint:
    """Build the encoder from `folder`, with all adapters loaded (or the one merged into it)."""
    base = load_base(folder, quantize=quantize, dtype=dtype)
    model, args = base.model, base.model.args
    has_adapters = (folder / "adapters").is_dir()
    layout = ("mlx" if base.prefixed else "hf") + ("-adapters" if has_adapters else "-merged")
    if has_adapters:
        names = package_spec().adapters
        _check_task_names(base.config, names, folder)
        shapes = lora_shapes(args)
        adapters = [read_adapter(folder / "adapters" / name, name, shapes) for name in names]
        attach_banks(model, stack_adapters(adapters, dtype))
        merged, adapter_names = None, names
    else:
        merged, adapter_names = merged_adapter or _merged_adapter_from_path(folder), ()
    mx.eval(model.parameters())
    _check_finite(model, folder)
    return LoadedCheckpoint(model, layout, base.weights_file, adapter_names, merged, base.quantization)


def _check_finite(model: nn.Module, source: Path) -> None:
    """NaN or inf in any weight would make every vector NaN: refuse at load (one pass, on the device)."""
    flat = cast(list[tuple[str, mx.array]], tree_flatten(model.parameters()))
    floats = [(name, a) for name, a in flat if isinstance(a, mx.array) and mx.issubdtype(a.dtype, mx.floating)]
    finite = [mx.all(mx.isfinite(a)) for _, a in floats]
    mx.eval(finite)
    bad = [name for (name, _), ok in zip(floats, finite) if not ok.item()]
    if bad:
        raise ModelLoadError(f"{source}: {len(bad)} weight tensors hold NaN or infinity (a damaged or badly "
                             f"converted file), e.g. {bad[:3]}")


def _weights_files(folder: Path, quantize: int | None) -> tuple[str, list[Path]]:
    """(description, files): a pre-quantized variant, model.safetensors, or the shards listed in
    model.safetensors.index.json (the larger transformers checkpoints)."""
    if quantize and (folder / f"model-{quantize}bit.safetensors").is_file():
        return f"model-{quantize}bit.safetensors", [folder / f"model-{quantize}bit.safetensors"]
    if (folder / "model.safetensors").is_file():
        return "model.safetensors", [folder / "model.safetensors"]
    index = folder / SHARD_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelLoadError(f"{index} is not a safetensors index: {exc}") from exc
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ModelLoadError(f"{folder} lacks shards listed in {index.name}: {missing}")
        return f"{len(shards)} shards of {index.name}", [folder / name for name in shards]
    raise ModelLoadError(f"{folder} has no model.safetensors (nor shards listed in {SHARD_INDEX})")


def _read_weights(paths: list[Path]) -> tuple[dict[str, mx.array], dict[str, mx.array], bool]:
    """(base weights with unprefixed keys, `lm_head.*` tensors, whether the files used the `model.` prefix)."""
    weights: dict[str, mx.array] = {}
    for path in paths:
        try:
            weights.update(cast(dict[str, mx.array], mx.load(str(path))))  # .safetensors: always a dict
        except Exception as exc:  # safetensors parse errors have no common type
            raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    head = {k.removeprefix("lm_head."): v for k, v in weights.items() if k.startswith("lm_head.")}
    weights = {k: v for k, v in weights.items() if not _IGNORED_KEYS.match(k) and not k.startswith("lm_head.")}
    prefixed = bool(weights) and all(k.startswith("model.") for k in weights)
    if prefixed:
        weights = {k.removeprefix("model."): v for k, v in weights.items()}
    return weights, head, prefixed


def _head_rows(config: dict[str, Any], weights: dict[str, mx.array], head: dict[str, mx.array],
               rows: list[int], dtype: mx.Dtype, folder: Path) -> mx.array:
    """Rows of the output projection, dequantized if the file is pre-quantized."""
    tied = config.get("tie_word_embeddings", True)
    if not tied and "weight" not in head:
        raise ModelLoadError(f"{folder}/config.json says tie_word_embeddings=false, but no lm_head.weight is stored")
    source = {k.removeprefix("embed_tokens."): v for k, v in weights.items() if k.startswith("embed_tokens.")}
    source = source if tied else head
    index = mx.array(rows, dtype=mx.int32)
    if "scales" in source:
        w, scales = source["weight"], source["scales"]
        fan_in = config["hidden_size"]
        bits = w.shape[-1] * 32 // fan_in
        picked = mx.dequantize(w[index], scales[index], source["biases"][index],
                               group_size=fan_in // scales.shape[-1], bits=bits)
    else:
        picked = source["weight"][index]
    return picked.astype(dtype)


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
