"""The rerank rows of `mlx-jina bench`: load (or make) the reranker, time its rows against the
chosen peers, print the table or return the JSON part."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click


def rerank_bench(names: list[str], *, folder: Path | None, model: str, quantize: str | None, dtype: str | None,
                 compare: list[str], warmup: int, repeats: int, as_json: bool) -> dict[str, Any]:
    """Run the rerank rows `names`; prints the table unless as_json. folder: real weights on this
    machine (None: random weights of the Qwen3-Reranker-0.6B shape). compare: the --compare peers;
    "torch" (the model card's transformers code, bench/torch_rerank_ref.py) is the one with a
    reranker path, the encoder-only peers are skipped here."""
    import mlx.core as mx

    from mlx_jina.bench.random_reranker import random_reranker
    from mlx_jina.bench.rerank_runner import bench_rerank_rows
    from mlx_jina.bench.rerank_workloads import build_rerank_workloads
    from mlx_jina.bench.runner import machine
    from mlx_jina.rerank import load_reranker

    bits = int(quantize) if quantize else None
    if folder is not None:
        reranker, weights = load_reranker(folder, quantize=bits, dtype=dtype), f"real: {folder}"
    else:
        reranker = random_reranker(dtype=getattr(mx, dtype or "float32"), quantize=bits)
        weights = f"RANDOM weights of the exact Qwen3-Reranker-0.6B shape ({model} is not on this machine): speed only"
    peers = {}
    if "torch" in compare:
        from mlx_jina.bench.torch_rerank_ref import card_runner

        peers["torch"] = card_runner(reranker)
    report: dict[str, Any] = {
        "machine": machine(), "weights": weights, "dtype": reranker.info.dtype,
        "quantize": reranker.info.quantization, "repeats": repeats, "warmup": warmup,
        "timed": "prompt token ids -> P(yes) per candidate (tokenization excluded); MLX with its shared-prefix cache"}
    if not as_json:
        click.echo(_header(report, list(peers)))
    rows = bench_rerank_rows(reranker, build_rerank_workloads(reranker, names), warmup=warmup, repeats=repeats,
                             peers=peers, on_row=lambda row: None if as_json else click.echo(_line(asdict(row))))
    if peers and not as_json:
        click.echo("speedup = peer median / MLX median (>1: MLX faster); max |d| = largest |P(yes) difference| "
                   "to MLX over the row's candidates (same weights and prompts)")
    return report | {"rows": [asdict(r) for r in rows]}


def _header(report: dict[str, Any], peers: list[str]) -> str:
    m = report["machine"]
    head = f"{'row':<15}{'cands':>6}{'tokens':>8}{'ms/query':>11}{'cand/s':>8}{'tok/s':>8}{'MLX MB':>8}{'RSS MB':>8}"
    for peer in peers:
        head += f"{peer + ' ms':>12}{'cand/s':>8}{'speedup':>9}{'max |d|':>9}"
    return "\n".join([
        "", f"reranker on {m['device']} (load {m['load_avg_1m']} at start), MLX {m['mlx']}",
        f"weights: {report['weights']}; dtype {report['dtype']}, quantize {report['quantize']}",
        f"timed: {report['timed']}; {report['warmup']} warmup + {report['repeats']} timed runs per row, "
        "interleaved with the peers; medians", "", head])


def _line(r: dict[str, Any]) -> str:
    line = (f"{r['name']:<15}{r['candidates']:>6}{r['tokens']:>8}{r['ms_per_query']:>11.1f}"
            f"{r['candidates_per_s']:>8.2f}{r['tokens_per_s']:>8.1f}{r['peak_mem_mb']:>8.0f}{r['max_rss_mb']:>8.0f}")
    for t in r["peers"].values():
        line += f"{t['ms_per_query']:>12.1f}{t['candidates_per_s']:>8.2f}{t['speedup']:>8.2f}x"
        line += f"{t['max_abs_dscore']:>9.1e}"
    return line
