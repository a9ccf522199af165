"""`mlx-jina bench`: encoder speed on the configurations users compare, optionally side by side
with the PyTorch reference (`--compare torch`) on the same weights and inputs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mlx_jina.batching import ADAPTER_MODES, AdapterMode
from mlx_jina.cli import main
from mlx_jina.cli.options import load_from_options, model_options
from mlx_jina.errors import InputError


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of the table.")
@click.option("--compare", type=click.Choice(["torch"]), default=None,
              help="Also run the reference path (transformers Qwen3Model + unmerged PEFT) on the same inputs.")
@click.option("--adapter-mode", type=click.Choice(ADAPTER_MODES), default="auto", show_default=True,
              help="per-row: one pass mixes adapters; shared: one pass per adapter group; merged: the same "
                   "on fused (adapter-merged) weights; auto: as encode() picks.")
@click.option("--batch-tokens", type=int, default=None, help="Token budget per forward pass (with padding).")
@click.option("--rows", default=None,
              help="Comma-separated subset of rows by name (as in the table), e.g. query,short-8.")
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True, help="Timed runs per row.")
@click.option("--warmup", type=click.IntRange(0), default=1, show_default=True, help="Untimed runs per row first.")
@model_options
def bench(as_json: bool, compare: str | None, adapter_mode: AdapterMode, batch_tokens: int | None, rows: str | None,
          repeats: int, warmup: int, **model_opts: Any) -> None:
    """Time the encoder (real weights if present, else random weights of the exact shape)."""
    from mlx_jina.bench.runner import bench_rows, machine, mlx_matmul_gflops
    from mlx_jina.bench.workloads import build_workloads, select
    from mlx_jina.embedder import DEFAULT_BATCH_TOKENS
    from mlx_jina.model.lora import lora_rank

    embedder, weights = _embedder(**model_opts)
    try:
        workloads = select(build_workloads(embedder.tokenizer), rows.split(",") if rows else None)
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--rows") from exc
    args = embedder.model.args
    peaks = {"mlx": mlx_matmul_gflops(args.hidden_size, args.intermediate_size)}
    reference = None
    if compare:
        from mlx_jina.bench.runner import PEAK_TOKENS
        from mlx_jina.bench.torch_ref import reference_runner, torch_matmul_gflops

        reference = reference_runner(embedder)
        peaks["torch"] = torch_matmul_gflops(args.hidden_size, args.intermediate_size, PEAK_TOKENS)
    rank = lora_rank(embedder.model)
    report = {"machine": machine(), "weights": weights, "dtype": embedder.info.dtype,
              "quantize": embedder.info.quantization, "adapter_mode": adapter_mode,
              "batch_tokens": batch_tokens or DEFAULT_BATCH_TOKENS, "repeats": repeats, "warmup": warmup,
              "matmul_peak_gflops": peaks, "timed": "token ids -> pooled vectors (tokenization excluded)"}
    if not as_json:
        click.echo(_header(report, compare=reference is not None))
    results = bench_rows(embedder, workloads, batch_tokens=batch_tokens or DEFAULT_BATCH_TOKENS,
                         adapter_mode=adapter_mode, warmup=warmup, repeats=repeats, peak_gflops=max(peaks.values()),
                         lora_rank=rank, reference=reference,
                         on_row=lambda row: None if as_json else click.echo(_line(asdict(row))))
    if as_json:
        click.echo(json.dumps(report | {"rows": [asdict(r) for r in results]}, indent=2))
    elif reference is not None:
        click.echo("speedup = torch mean / MLX mean (>1: MLX faster); min cos = worst row agreement of the two paths")


def _embedder(model: str, revision: str | None, quantize: str | None, dtype: str | None) -> tuple[Any, str]:
    """Real weights when they are on this machine (a folder, or the hub cache); never downloads.
    Otherwise random weights of the exact published shape."""
    from mlx_jina.bench.random_weights import random_embedder

    folder = _local_folder(model, revision)
    if folder is not None:
        return load_from_options(str(folder), None, quantize, dtype), f"real: {folder}"
    import mlx.core as mx

    embedder = random_embedder(dtype=getattr(mx, dtype or "float32"), quantize=int(quantize) if quantize else None)
    return embedder, f"RANDOM weights of the exact v5-small shape ({model} is not on this machine): speed only"


def _local_folder(model: str, revision: str | None) -> Path | None:
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    from huggingface_hub import snapshot_download

    from mlx_jina.spec import package_spec

    spec = package_spec().repos.get(model)
    try:
        return Path(snapshot_download(model, revision=revision or (spec.revision if spec else None) or "main",
                                      local_files_only=True))
    except Exception:  # not cached (or not a hub id): fall back to random weights
        return None


def _header(report: dict[str, Any], *, compare: bool) -> str:
    m, peaks = report["machine"], report["matmul_peak_gflops"]
    head = f"{'row':<12}{'batch':>6}{'tokens':>8}{'mean ms':>10}{'p50 ms':>10}{'tok/s':>9}{'GFLOP/s':>9}{'%peak':>7}" \
           f"{'MLX MB':>8}{'RSS MB':>8}"
    if compare:
        head += f"{'torch ms':>10}{'torch tok/s':>12}{'speedup':>9}{'min cos':>9}"
    return "\n".join([
        f"machine: {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']} at start), {m['platform']}, "
        f"MLX {m['mlx']} on {m['device']}",
        f"BLAS: {m['blas']}",
        f"weights: {report['weights']}; dtype {report['dtype']}, quantize {report['quantize']}, "
        f"adapter mode {report['adapter_mode']}, batch tokens {report['batch_tokens']}",
        "float32 matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()),
        f"timed: {report['timed']}; {report['warmup']} warmup + {report['repeats']} timed runs per row",
        "", head])


def _line(r: dict[str, Any]) -> str:
    line = (f"{r['name']:<12}{r['batch']:>6}{r['tokens']:>8}{r['mean_ms']:>10.1f}{r['p50_ms']:>10.1f}"
            f"{r['tokens_per_s']:>9.1f}{r['gflops']:>9.1f}{r['pct_peak']:>7.1f}{r['peak_mem_mb']:>8.0f}"
            f"{r['max_rss_mb']:>8.0f}")
    if r["reference"]:
        t = r["reference"]
        line += f"{t['mean_ms']:>10.1f}{t['tokens_per_s']:>12.1f}{t['speedup']:>8.2f}x{t['min_cos']:>9.5f}"
    return line
