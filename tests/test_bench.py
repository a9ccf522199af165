"""`mlx-jina bench` on the tiny checkpoints: the right rows and fields, FLOP counting by hand, the
rerank rows and their torch reference (the model card's path, checked against the golden scores).
No timing assertions: numbers belong in BENCHMARKS.md, not in tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mlx_jina
from mlx_jina.bench import peers
from mlx_jina.bench.peers import PACKAGES, PEERS, build_peers
from mlx_jina.bench.rerank_workloads import QUERY, RerankWorkload, build_rerank_workloads
from mlx_jina.bench.runner import bench_rows, forward_flops
from mlx_jina.bench.workloads import Workload
from mlx_jina.cli import main
from mlx_jina.embedder import TINY_CHECKPOINT, load
from mlx_jina.model.qwen3 import ModelArgs

ROWS = ["query", "short-8"]
FIELDS = {"name", "description", "batch", "tokens", "mean_ms", "p50_ms", "tokens_per_s", "gflops", "pct_peak",
          "peak_mem_mb", "max_rss_mb", "peers", "best_peer", "vs_best_peer"}
HAVE_PEERS = all(importlib.util.find_spec(m) for m in PACKAGES["onnxruntime"])


def run_bench(*extra: str) -> str:
    result = CliRunner().invoke(main, ["bench", "--model", str(TINY_CHECKPOINT), "--rows", ",".join(ROWS),
                                       "--repeats", "1", "--warmup", "0", *extra])
    assert result.exit_code == 0, result.output
    return result.stdout  # progress lines (the ONNX export) go to stderr


def test_json_has_the_requested_rows_and_fields() -> None:
    report = json.loads(run_bench("--json"))
    assert [r["name"] for r in report["rows"]] == ROWS
    assert [(r["batch"], r["tokens"]) for r in report["rows"]] == [(1, 12), (8, 96)]  # exact token counts
    for row in report["rows"]:
        assert set(row) == FIELDS
        assert row["mean_ms"] > 0 and row["tokens_per_s"] > 0 and row["gflops"] > 0
        assert row["peers"] == {} and row["best_peer"] is None and row["vs_best_peer"] is None
    assert report["weights"].startswith("real: ") and report["matmul_peak_gflops"]["mlx"] > 0
    assert {"cpu", "cores", "blas", "mlx"} <= set(report["machine"])


def test_table_lists_rows_and_adapter_mode() -> None:
    table = run_bench("--adapter-mode", "per-row")
    assert "adapter mode per-row" in table and "GFLOP/s" in table
    assert [line.split()[0] for line in table.splitlines() if line.split()[:1] in (["query"], ["short-8"])] == ROWS


def test_unknown_row_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["bench", "--model", str(TINY_CHECKPOINT), "--rows", "nope"])
    assert result.exit_code == 2 and "short-8" in result.output


@pytest.mark.skipif(not HAVE_PEERS, reason="needs pip install -e '.[reference]' (torch, peft, onnxruntime)")
def test_compare_runs_every_peer_on_the_same_model() -> None:
    report = json.loads(run_bench("--json", "--compare", ",".join(PEERS), "--repeats", "2"))
    for row in report["rows"]:
        assert set(row["peers"]) == set(PEERS)
        for stats in row["peers"].values():
            assert set(stats) == {"mean_ms", "p50_ms", "tokens_per_s", "speedup", "min_cos"}
            assert stats["min_cos"] > 0.9999  # same weights, same inputs, same pooled vectors
            assert stats["speedup"] == pytest.approx(stats["p50_ms"] / row["p50_ms"])
        fastest = min(row["peers"].values(), key=lambda s: s["p50_ms"])
        assert row["peers"][row["best_peer"]] == fastest and row["vs_best_peer"] == fastest["speedup"]
    assert report["matmul_peak_gflops"]["torch"] > 0
    assert set(report["peers"]) == set(PEERS) and "adapter retrieval" in report["peers"]["onnxruntime"]


@pytest.mark.skipif(not HAVE_PEERS, reason="needs pip install -e '.[reference]' (torch, peft)")
def test_merged_peer_skips_a_row_mixing_adapters() -> None:
    embedder = load(str(TINY_CHECKPOINT))
    ids = [[5, 6, 7], [8, 9]]
    workloads = [Workload("one", "", ids, ["retrieval.query", "retrieval.passage"]),
                 Workload("mixed", "", ids, ["retrieval.query", "classification"])]
    chosen = build_peers(embedder, ["torch", "torch-merged"], workloads)
    one, mixed = bench_rows(embedder, workloads, batch_tokens=64, adapter_mode="auto", warmup=0, repeats=1,
                            peak_gflops=1.0, lora_rank=None, peers=chosen)
    assert set(one.peers) == {"torch", "torch-merged"} and set(mixed.peers) == {"torch"}
    assert mixed.best_peer == "torch"
    assert min(s["min_cos"] for s in [*one.peers.values(), *mixed.peers.values()]) > 0.9999


def test_a_missing_peer_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "find_spec", lambda name: None if name == "onnxruntime" else object())
    result = CliRunner().invoke(main, ["bench", "--model", str(TINY_CHECKPOINT), "--rows", "query",
                                       "--compare", "torch,onnxruntime"])
    assert result.exit_code == 1
    assert "needs onnxruntime, not installed" in result.output and "pip install 'mlx-jina[reference]'" in result.output


def test_unknown_peer_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["bench", "--model", str(TINY_CHECKPOINT), "--compare", "torch,tensorflow"])
    assert result.exit_code == 2 and "tensorflow" in result.output and "onnxruntime" in result.output


def test_flops_match_a_hand_count() -> None:
    args = ModelArgs(hidden_size=128, num_hidden_layers=2, intermediate_size=256, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6, vocab_size=1024, rope_theta=1e6,
                     max_position_embeddings=512)
    # per token: q 128x128, k 128x64, v 128x64, o 128x128, gate/up 128x256, down 256x128 -> 147,456 MACs
    projections = 2 * 147_456
    # LoRA r=8: 8 * sum(in + out) = 8 * (256 + 192 + 192 + 256 + 384 + 384 + 384) MACs
    lora = 2 * 8 * 2048
    # causal attention, 128 = 4 heads x 32: QK^T and PV over 6 pairs (L=3) and 1 pair (L=1)
    attention = 2 * 2 * 128 * (6 + 1)
    per_layer = (projections + lora) * 4 + attention
    assert forward_flops(args, [3, 1], lora_rank=8) == 2 * per_layer
    assert forward_flops(args, [3, 1], lora_rank=None) == 2 * (projections * 4 + attention)


# ---- rerank rows, on the tiny Qwen3-Reranker (tests/conftest.py rebuilds it) ----------------------
RERANK_FIELDS = {"name", "description", "candidates", "tokens", "ms_per_query", "mean_ms", "candidates_per_s",
                 "tokens_per_s", "peak_mem_mb", "max_rss_mb", "peers", "best_peer", "vs_best_peer"}
HAVE_TRANSFORMERS = all(importlib.util.find_spec(m) for m in ("torch", "transformers"))


def run_rerank_bench(reranker: Path, rows: str, *extra: str) -> str:
    result = CliRunner().invoke(main, ["bench", "--model", str(TINY_CHECKPOINT), "--reranker", str(reranker),
                                       "--rows", rows, "--repeats", "1", "--warmup", "0", *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_rerank_prompts_are_the_cards_with_documents_of_the_row_length(tiny_reranker) -> None:
    workloads = build_rerank_workloads(tiny_reranker, ["rerank-10x800", "rerank-10x200"])
    assert [(w.name, w.candidates) for w in workloads] == [("rerank-10x200", 10), ("rerank-10x800", 10)]
    prompts = tiny_reranker.prompts
    frame = len(prompts.prefix_ids) + len(prompts.suffix_ids)
    template = len(tiny_reranker.prompts.build(QUERY, ["x"])[0].ids) - frame - 1  # instruction + query
    for w, length in zip(workloads, (200, 800)):
        assert len({tuple(r) for r in w.rows}) == w.candidates  # different real text per candidate
        for row in w.rows:
            assert row[: len(prompts.prefix_ids)] == prompts.prefix_ids
            assert row[len(row) - len(prompts.suffix_ids):] == prompts.suffix_ids
            assert abs(len(row) - frame - template - length) <= 1
        assert w.tokens == sum(map(len, w.rows))


def test_encoder_and_rerank_rows_in_one_json_report(tiny_reranker_path: Path) -> None:
    report = json.loads(run_rerank_bench(tiny_reranker_path, "query,rerank-10x200", "--json"))
    assert [r["name"] for r in report["rows"]] == ["query"]
    rerank = report["rerank"]
    assert rerank["weights"] == f"real: {tiny_reranker_path}"
    (row,) = rerank["rows"]
    assert set(row) == RERANK_FIELDS and row["name"] == "rerank-10x200" and row["candidates"] == 10
    assert row["tokens"] > 10 * 200 and row["peers"] == {} and row["vs_best_peer"] is None
    assert row["candidates_per_s"] == pytest.approx(10 / (row["ms_per_query"] / 1e3))
    assert row["tokens_per_s"] == pytest.approx(row["tokens"] / (row["ms_per_query"] / 1e3))


def test_rerank_table(tiny_reranker_path: Path) -> None:
    table = run_rerank_bench(tiny_reranker_path, "rerank-10x200")
    assert "ms/query" in table and "cand/s" in table
    assert [line.split()[:2] for line in table.splitlines() if line.startswith("rerank-")] == [["rerank-10x200", "10"]]


def test_unknown_row_names_the_rerank_rows_too() -> None:
    result = CliRunner().invoke(main, ["bench", "--model", str(TINY_CHECKPOINT), "--rows", "query,rerank-1x1"])
    assert result.exit_code == 2 and "rerank-40x800" in result.output and "rerank-1x1" in result.output


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="needs torch and transformers")
@pytest.mark.parametrize("name", ["qwen3-reranker-tiny", "qwen3-reranker-tiny-untied"])
def test_torch_card_path_reproduces_the_golden_scores(golden_rerank, tiny_reranker_paths, name) -> None:
    """The reference, built from the MLX model's weights (tied, or untied with only the yes/no head
    rows), scores a left-padded batch as the card's own code scored each pair alone."""
    from mlx_jina.bench.torch_rerank_ref import card_runner

    reranker = mlx_jina.load_reranker(tiny_reranker_paths[name])
    case = next(c for c in golden_rerank["cases"] if c["name"] == "mixed-lengths")
    prompts = reranker.build_prompts(case["query"], case["documents"], instruction=case["instruction"])
    workload = RerankWorkload("golden", "", [p.ids for p in prompts])
    np.testing.assert_allclose(card_runner(reranker)(workload), case["scores"][name], atol=1e-4)


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason="needs torch and transformers")
def test_compare_torch_on_rerank_rows(tiny_reranker_paths) -> None:
    report = json.loads(run_rerank_bench(tiny_reranker_paths["qwen3-reranker-tiny-untied"], "rerank-10x200",
                                         "--json", "--compare", "torch"))
    (row,) = report["rows"]
    torch_row = row["peers"]["torch"]
    assert set(torch_row) == {"ms_per_query", "mean_ms", "candidates_per_s", "speedup", "max_abs_dscore"}
    assert torch_row["max_abs_dscore"] < 1e-4  # same weights, same prompts
    assert torch_row["speedup"] == pytest.approx(torch_row["ms_per_query"] / row["ms_per_query"])
    assert (row["best_peer"], row["vs_best_peer"]) == ("torch", torch_row["speedup"])
