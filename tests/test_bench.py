"""`mlx-jina bench` on the tiny checkpoint: the right rows and fields, FLOP counting by hand.
No timing assertions: numbers belong in BENCHMARKS.md, not in tests."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner

from mlx_jina.bench import peers
from mlx_jina.bench.peers import PACKAGES, PEERS, build_peers
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
