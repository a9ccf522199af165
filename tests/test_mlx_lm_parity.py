"""Cross-check of our decoder against mlx-lm's independent Qwen3 on the same (merged) weights."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from conftest import TINY

import mlx_jina

qwen3 = pytest.importorskip("mlx_lm.models.qwen3")


def test_base_decoder_matches_mlx_lm():
    folder = TINY / "jina-v5-tiny-retrieval"
    config = json.loads((folder / "config.json").read_text())
    reference = qwen3.Model(qwen3.ModelArgs.from_dict(dict(config, model_type="qwen3")))
    reference.load_weights([(f"model.{k}", v) for k, v in mx.load(str(folder / "model.safetensors")).items()])
    ours = mlx_jina.load(folder)
    ids = ours.tokenize(["How fast does light travel in a vacuum?"], ["retrieval.query"])[0]
    expected = np.array(reference.model(mx.array([ids]))[0, -1])
    got = ours.embed_ids([ids], ["retrieval.query"])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
