"""A missing or malformed checkpoint or adapter is a clear error, never a silent fallback."""

from __future__ import annotations

import json
import shutil

import mlx.core as mx
import pytest
from conftest import TINY

import mlx_jina
from mlx_jina.errors import ModelLoadError


def test_missing_adapter_folder(tiny_copy):
    shutil.rmtree(tiny_copy / "adapters" / "clustering")
    with pytest.raises(ModelLoadError, match=r"adapter 'clustering'.*missing.*refusing to fall back"):
        mlx_jina.load(tiny_copy)


def test_malformed_adapter_config(tiny_copy):
    (tiny_copy / "adapters" / "retrieval" / "adapter_config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"adapter 'retrieval'.*not a valid LoRA config"):
        mlx_jina.load(tiny_copy)


def test_dora_adapter_is_refused(tiny_copy):
    path = tiny_copy / "adapters" / "retrieval" / "adapter_config.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), use_dora=True)))
    with pytest.raises(ModelLoadError, match="only plain LoRA"):
        mlx_jina.load(tiny_copy)


def _rewrite_adapter(folder, change):
    path = folder / "adapters" / "text-matching" / "adapter_model.safetensors"
    tensors = mx.load(str(path))
    change(tensors)
    mx.save_safetensors(str(path), tensors)


def test_adapter_missing_tensors(tiny_copy):
    _rewrite_adapter(tiny_copy, lambda t: [t.pop(k) for k in list(t) if "layers.1.mlp" in k])
    with pytest.raises(ModelLoadError, match=r"adapter 'text-matching'.*lacks LoRA weights for 3"):
        mlx_jina.load(tiny_copy)


def test_adapter_wrong_shape(tiny_copy):
    key = "base_model.model.layers.0.self_attn.q_proj.lora_A.weight"
    _rewrite_adapter(tiny_copy, lambda t: t.__setitem__(key, mx.zeros((8, 64))))
    with pytest.raises(ModelLoadError, match=r"q_proj has lora_A \(8, 64\)"):
        mlx_jina.load(tiny_copy)


def test_adapter_unexpected_tensor(tiny_copy):
    _rewrite_adapter(tiny_copy, lambda t: t.__setitem__("base_model.model.lm_head.lora_A.weight", mx.zeros((8, 8))))
    with pytest.raises(ModelLoadError, match="unexpected tensor"):
        mlx_jina.load(tiny_copy)


def test_base_weights_must_match_config(tiny_copy):
    path = tiny_copy / "model.safetensors"
    tensors = mx.load(str(path))
    del tensors["layers.1.mlp.up_proj.weight"]
    tensors["layers.9.extra.weight"] = mx.zeros((2,))
    mx.save_safetensors(str(path), tensors)
    with pytest.raises(ModelLoadError, match=r"1 missing .*up_proj.*1 unexpected"):
        mlx_jina.load(tiny_copy)


def test_missing_files(tiny_copy):
    (tiny_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer.json"):
        mlx_jina.load(tiny_copy)
    (tiny_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        mlx_jina.load(tiny_copy)
    (tiny_copy / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        mlx_jina.load(tiny_copy)


def test_config_rope_theta_is_read_not_assumed(tiny_copy):
    path = tiny_copy / "config.json"
    config = json.loads(path.read_text())
    assert mlx_jina.load(tiny_copy).model.args.rope_theta == config["rope_theta"]
    config["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default"}  # transformers 5 style
    del config["rope_theta"]
    path.write_text(json.dumps(config))
    assert mlx_jina.load(tiny_copy).model.args.rope_theta == 10000.0
    config["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="unsupported rope scaling"):
        mlx_jina.load(tiny_copy)


def test_merged_folder_needs_a_task_name(tmp_path):
    folder = shutil.copytree(TINY / "jina-v5-tiny-retrieval", tmp_path / "my-model")
    with pytest.raises(ModelLoadError, match="pass adapter="):
        mlx_jina.load(folder)
    assert mlx_jina.load(folder, adapter="retrieval").info.merged_adapter == "retrieval"


def test_not_a_folder_nor_a_hub_id(tmp_path):
    with pytest.raises(ModelLoadError, match="neither an existing folder nor a hub id"):
        mlx_jina.load(str(tmp_path / "a" / "b" / "c"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelLoadError, match="is a file"):
        mlx_jina.load(tmp_path / "file")
    with pytest.raises(ModelLoadError, match="quantize must be"):
        mlx_jina.load(TINY / "jina-v5-tiny", quantize=3)


def test_malformed_tokenizer_names_the_file(tiny_copy):
    (tiny_copy / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": ')
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json is not a valid tokenizer file"):
        mlx_jina.load(tiny_copy)


@pytest.mark.parametrize("key,value", [("num_attention_heads", 0), ("max_position_embeddings", -5),
                                       ("num_key_value_heads", 0), ("hidden_size", 64.5)])
def test_nonsense_config_sizes_are_refused_at_load(tiny_copy, key, value):
    path = tiny_copy / "config.json"
    config = json.loads(path.read_text())
    config[key] = value
    path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=f"{key} must be a positive integer, not {value}"):
        mlx_jina.load(tiny_copy)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_refused_at_load(tiny_copy, bad):
    path = tiny_copy / "model.safetensors"
    tensors = mx.load(str(path))
    weight = tensors["layers.1.mlp.up_proj.weight"]
    tensors["layers.1.mlp.up_proj.weight"] = mx.where(mx.arange(weight.size).reshape(weight.shape) == 7,
                                                      mx.array(bad, dtype=weight.dtype), weight)
    mx.save_safetensors(str(path), tensors)
    with pytest.raises(ModelLoadError, match=r"NaN or infinity .*layers\.1\.mlp\.up_proj\.weight"):
        mlx_jina.load(tiny_copy)
