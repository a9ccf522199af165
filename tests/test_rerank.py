"""Qwen3-Reranker on our MLX Qwen3 vs the model card's transformers code (weights/golden), plus
the prefix-cache path, truncation, layouts and every kind of bad input."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import mlx_jina
from mlx_jina.errors import InputError, InputTooLongError, ModelLoadError
from mlx_jina.rerank.prompt import shared_prefix_length
from mlx_jina.spec import package_spec

TOLERANCE = 1e-3  # |score - golden| in float32 (measured: ~1e-6)
CHECKPOINTS = ["qwen3-reranker-tiny", "qwen3-reranker-tiny-untied"]


def _cases(golden: dict) -> list[dict]:
    return golden["cases"]


@pytest.fixture(scope="module")
def rerankers(tiny_reranker_paths: dict[str, Path]) -> dict[str, mlx_jina.Reranker]:
    return {name: mlx_jina.load_reranker(path) for name, path in tiny_reranker_paths.items()}


@pytest.fixture(scope="module")
def short_rerankers(tiny_reranker_paths: dict[str, Path], golden_rerank: dict) -> dict[str, mlx_jina.Reranker]:
    """The same checkpoints with the lowered max_length of the golden over-length case."""
    limit = next(c["max_length"] for c in _cases(golden_rerank) if "max_length" in c)
    return {name: mlx_jina.load_reranker(path, max_length=limit) for name, path in tiny_reranker_paths.items()}


@pytest.mark.parametrize("name", CHECKPOINTS)
@pytest.mark.parametrize("prefix_cache", [True, False], ids=["prefix-cache", "plain"])
def test_scores_match_the_model_card(golden_rerank, rerankers, short_rerankers, name, prefix_cache):
    """Every case (single pair; short+long documents in one batch; multilingual; custom
    instruction; special-token text; over-length) in one call each, both paths, vs one-pair-at-a-time torch."""
    for case in _cases(golden_rerank):
        rr = (short_rerankers if "max_length" in case else rerankers)[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = rr.score(case["query"], case["documents"], instruction=case["instruction"],
                              prefix_cache=prefix_cache)
        assert scores.dtype == np.float32 and scores.shape == (len(case["documents"]),)
        np.testing.assert_allclose(scores, case["scores"][name], atol=TOLERANCE, rtol=0, err_msg=case["name"])
        tokens = [len(p.ids) for p in rr.build_prompts(case["query"], case["documents"],
                                                       instruction=case["instruction"])]
        assert tokens == case["prompt_tokens"], case["name"]


def test_prefix_cache_equals_plain_path(rerankers):
    rr = rerankers["qwen3-reranker-tiny-untied"]
    docs = ["short", "a bit longer document about the speed of light " * 3, "x" * 50, "Licht ist schnell."]
    cached = rr.score("speed of light", docs, prefix_cache=True)
    plain = rr.score("speed of light", docs, prefix_cache=False)
    np.testing.assert_allclose(cached, plain, atol=1e-5, rtol=0)
    # a tight token budget splits the continuations into several batches: same scores
    np.testing.assert_allclose(rr.score("speed of light", docs, batch_tokens=40), plain, atol=1e-5, rtol=0)


def test_rows_of_several_queries_in_one_call(rerankers):
    """score_ids with group keys (the server's micro-batching rounds) == each query on its own."""
    rr = rerankers["qwen3-reranker-tiny"]
    a = rr.build_prompts("first query", ["doc one", "doc two", "doc three"])
    b = rr.build_prompts("another question entirely", ["alpha", "beta"])
    c = rr.build_prompts("lonely", ["single"])
    rows = [p.ids for p in a + b + c]
    mixed = rr.score_ids(rows, ["a"] * 3 + ["b"] * 2 + ["c"])
    alone = np.concatenate([rr.score_ids([p.ids for p in ps]) for ps in (a, b, c)])
    np.testing.assert_allclose(mixed, alone, atol=1e-5, rtol=0)


def test_shared_prefix_leaves_every_row_a_token():
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert shared_prefix_length([[9, 2], [1, 2]]) == 0


def test_rerank_orders_best_first(golden_rerank, rerankers):
    case = next(c for c in _cases(golden_rerank) if c["name"] == "mixed-lengths")
    golden = case["scores"]["qwen3-reranker-tiny"]
    results = rerankers["qwen3-reranker-tiny"].rerank(case["query"], case["documents"], top_n=3)
    assert [r.index for r in results] == sorted(range(len(golden)), key=lambda i: -golden[i])[:3]
    assert [r.document for r in results] == [case["documents"][r.index] for r in results]
    assert all(a.score >= b.score for a, b in zip(results, results[1:]))
    assert len(rerankers["qwen3-reranker-tiny"].rerank(case["query"], case["documents"], top_n=99)) == 5


def test_over_length_pairs_are_cut_and_say_so(golden_rerank, short_rerankers):
    case = next(c for c in _cases(golden_rerank) if c["name"] == "over-length")
    rr = short_rerankers["qwen3-reranker-tiny"]
    with pytest.warns(UserWarning, match=r"documents \[0\] were cut"):
        results = rr.rerank(case["query"], case["documents"])
    assert {r.index: r.truncated for r in results} == {0: True, 1: False, 2: False}
    with pytest.raises(InputTooLongError, match="document 0.*truncate=True"):
        rr.score(case["query"], case["documents"], truncate=False)


def test_default_limit_is_the_cards(tiny_reranker):
    assert tiny_reranker.max_length == package_spec().reranker.max_length == 8192


@pytest.mark.parametrize("query, documents, kwargs, message", [
    ("", ["doc"], {}, "query is empty"),
    ("   ", ["doc"], {}, "query is empty"),
    (None, ["doc"], {}, "query must be a string"),
    ("q", "just a string", {}, "documents must be a list"),
    ("q", [], {}, "documents is an empty list"),
    ("q", ["fine", ""], {}, "document 1 is empty"),
    ("q", ["fine", 3], {}, "document 1 is a int"),
    ("q", ["fine", {"text": "x"}], {}, "document 1 is a dict"),
    ("q", ["doc"], {"top_n": 0}, "top_n must be an integer of at least 1"),
    ("q", ["doc"], {"top_n": True}, "top_n must be"),
    ("q", ["doc"], {"top_n": "3"}, "top_n must be"),
    ("q", ["doc"], {"instruction": ""}, "instruction must be a non-empty string"),
    ("q", ["doc"], {"instruction": 7}, "instruction must be"),
])
def test_bad_input_is_named(tiny_reranker, query, documents, kwargs, message):
    with pytest.raises(InputError, match=message):
        tiny_reranker.rerank(query, documents, **kwargs)
    if "top_n" not in kwargs:
        with pytest.raises(InputError, match=message):
            tiny_reranker.score(query, documents, **kwargs)


def test_too_many_documents(tiny_reranker):
    limit = package_spec().reranker.max_documents
    with pytest.raises(InputError, match=f"got {limit + 1} documents.*at most {limit}"):
        tiny_reranker.score("q", ["d"] * (limit + 1))


def test_embedding_model_is_refused(tiny_path):
    with pytest.raises(ModelLoadError, match="not a Qwen3-Reranker checkpoint.*mlx_jina.load"):
        mlx_jina.load_reranker(tiny_path)


@pytest.mark.parametrize("max_length", [0, 10, 10**6, True])
def test_max_length_bounds(tiny_reranker_path, max_length):
    with pytest.raises(ModelLoadError, match="max_length must be an integer"):
        mlx_jina.load_reranker(tiny_reranker_path, max_length=max_length)


def test_untied_config_without_lm_head_is_refused(tmp_path, tiny_reranker_paths):
    folder = Path(shutil.copytree(tiny_reranker_paths["qwen3-reranker-tiny"], tmp_path / "broken"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, tie_word_embeddings=False)))
    with pytest.raises(ModelLoadError, match="tie_word_embeddings=false, but no lm_head.weight"):
        mlx_jina.load_reranker(folder)


def test_sharded_checkpoint_loads_like_one_file(tmp_path, tiny_reranker_paths, rerankers):
    """The 4B / 8B layout: model-0000N-of-0000M.safetensors + model.safetensors.index.json."""
    source = tiny_reranker_paths["qwen3-reranker-tiny-untied"]
    folder = Path(shutil.copytree(source, tmp_path / "sharded"))
    weights = mx.load(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    keys = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for file, part in shards.items():
        mx.save_safetensors(str(folder / file), {k: weights[k] for k in part}, metadata={"format": "pt"})
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: file for file, part in shards.items() for k in part}}))
    sharded = mlx_jina.load_reranker(folder)
    docs = ["one document", "another, longer document"]
    np.testing.assert_allclose(sharded.score("q", docs), rerankers["qwen3-reranker-tiny-untied"].score("q", docs),
                               atol=1e-6, rtol=0)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="lacks shards"):
        mlx_jina.load_reranker(folder)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_body_scores_close(rerankers, tiny_reranker_paths, bits):
    rr = mlx_jina.load_reranker(tiny_reranker_paths["qwen3-reranker-tiny"], quantize=bits)
    assert rr.info.quantization == bits
    docs = ["Light travels at about 300,000 km per second.", "Paris is in France.", "def f(): pass"]
    exact = rerankers["qwen3-reranker-tiny"].score("how fast is light?", docs)
    assert np.abs(rr.score("how fast is light?", docs) - exact).max() < (0.05 if bits == 8 else 0.2)
