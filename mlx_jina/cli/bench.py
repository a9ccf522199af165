"""`mlx-jina bench`: encoder and reranker speed on the configurations users compare, optionally
side by side with the engines users would pick instead (`--compare torch,torch-merged,onnxruntime`)
on the same weights and inputs."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from mlx_jina.batching import ADAPTER_MODES, AdapterMode
from mlx_jina.bench.peers import PEERS
from mlx_jina.cli import main
from mlx_jina.cli.options import load_from_options, model_options, reranker_options
from mlx_jina.errors import InputError
from mlx_jina.spec import RepoSpec


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of the table.")
@click.option("--compare", default=None, metavar="PEERS",
              help="Comma-separated peers timed interleaved with MLX on the same weights and inputs: "
                   + "; ".join(f"{name}: {what}" for name, what in PEERS.items()) + ".")
@click.option("--adapter-mode", type=click.Choice(ADAPTER_MODES), default="auto", show_default=True,
              help="per-row: one pass mixes adapters; shared: one pass per adapter group; merged: the same "
                   "on fused (adapter-merged) weights; auto: as encode() picks.")
@click.option("--batch-tokens", type=int, default=None, help="Token budget per forward pass (with padding).")
@click.option("--rows", default=None,
              help="Comma-separated subset of rows by name (as in the tables), e.g. query,short-8,rerank-10x200.")
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True, help="Timed runs per row.")
@click.option("--warmup", type=click.IntRange(0), default=1, show_default=True, help="Untimed runs per row first.")
@model_options
@reranker_options
def bench(as_json: bool, compare: str | None, adapter_mode: AdapterMode, batch_tokens: int | None, rows: str | None,
          repeats: int, warmup: int, reranker: str, reranker_quantize: str | None, **model_opts: Any) -> None:
    """Time the encoder and the reranker (real weights if present, else random weights of the exact shapes)."""
    from mlx_jina.bench.peers import build_peers, parse_peers
    from mlx_jina.bench.rerank_workloads import RERANK_ROWS, split_rows
    from mlx_jina.bench.runner import PEAK_TOKENS, bench_rows, machine, mlx_matmul_gflops
    from mlx_jina.bench.workloads import build_workloads, select
    from mlx_jina.cli.bench_rerank import rerank_bench
    from mlx_jina.embedder import DEFAULT_BATCH_TOKENS
    from mlx_jina.model.lora import lora_rank
    from mlx_jina.spec import package_spec

    try:
        peer_names = parse_peers(compare)
    except InputError as exc:
        raise click.BadParameter(str(exc), param_hint="--compare") from exc
    encoder_rows, rerank_rows = split_rows(rows.split(",") if rows else None)
    rerank = functools.partial(rerank_bench, rerank_rows, model=reranker, quantize=reranker_quantize,
                               folder=_local_folder(reranker, None, package_spec().reranker.repos),
                               dtype=model_opts["dtype"], compare=peer_names, warmup=warmup, repeats=repeats,
                               as_json=as_json)
    if encoder_rows == []:
        report = rerank()
        if as_json:
            click.echo(json.dumps(report, indent=2))
        return
    embedder, weights = _embedder(**model_opts)
    try:
        workloads = select(build_workloads(embedder.tokenizer), encoder_rows)
    except InputError as exc:
        raise click.BadParameter(f"{exc}, or rerank rows {list(RERANK_ROWS)}", param_hint="--rows") from exc
    args = embedder.model.args
    peaks = {"mlx": mlx_matmul_gflops(args.hidden_size, args.intermediate_size)}
    peers = build_peers(embedder, peer_names, workloads)
    if peers:
        from mlx_jina.bench.torch_ref import torch_matmul_gflops

        peaks["torch"] = torch_matmul_gflops(args.hidden_size, args.intermediate_size, PEAK_TOKENS)
    rank = lora_rank(embedder.model)
    report = {"machine": machine(), "weights": weights, "dtype": embedder.info.dtype,
              "quantize": embedder.info.quantization, "adapter_mode": adapter_mode,
              "batch_tokens": batch_tokens or DEFAULT_BATCH_TOKENS, "repeats": repeats, "warmup": warmup,
              "matmul_peak_gflops": peaks, "timed": "token ids -> pooled vectors (tokenization excluded)"}
    if peers:
        report["peers"] = {p.name: PEERS[p.name] + (f" (adapter {p.adapter})" if p.adapter else "") for p in peers}
    if not as_json:
        click.echo(_header(report, peer_names))
    results = bench_rows(embedder, workloads, batch_tokens=batch_tokens or DEFAULT_BATCH_TOKENS,
                         adapter_mode=adapter_mode, warmup=warmup, repeats=repeats, peak_gflops=max(peaks.values()),
                         lora_rank=rank, peers=peers,
                         on_row=lambda row: None if as_json else click.echo(_line(asdict(row), peer_names)))
    if peers and not as_json:
        click.echo("vs best = the fastest peer's p50 / MLX p50 (>1: MLX faster than every peer run on the row); "
                   "cos = the worst row's cosine to MLX (same weights, same inputs); '-': a merged peer serves one "
                   "adapter, not a row mixing them.")
        click.echo("peers: " + "; ".join(f"{name}: {what}" for name, what in report["peers"].items()))
    reranked = {"rerank": rerank()} if rerank_rows else {}
    if as_json:
        click.echo(json.dumps(report | {"rows": [asdict(r) for r in results]} | reranked, indent=2))


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


def _local_folder(model: str, revision: str | None, repos: Mapping[str, RepoSpec] | None = None) -> Path | None:
    """The checkpoint folder of `model` if it is on this machine (a folder, or the hub cache at the
    pinned revision of `repos`, default the embedding repos), else None."""
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    from huggingface_hub import snapshot_download

    from mlx_jina.spec import package_spec

    spec = (package_spec().repos if repos is None else repos).get(model)
    try:
        return Path(snapshot_download(model, revision=revision or (spec.revision if spec else None) or "main",
                                      local_files_only=True))
    except Exception:  # not cached (or not a hub id): fall back to random weights
        return None


def _header(report: dict[str, Any], peers: list[str]) -> str:
    m, peaks = report["machine"], report["matmul_peak_gflops"]
    head = f"{'row':<12}{'batch':>6}{'tokens':>8}{'mean ms':>10}{'p50 ms':>10}{'tok/s':>9}{'GFLOP/s':>9}{'%peak':>7}" \
           f"{'MLX MB':>8}{'RSS MB':>8}"
    for peer in peers:
        head += f"{peer + ' p50':>{_peer_width(peer)}}{'cos':>8}"
    if peers:
        head += f"{'vs best':>9}"
    return "\n".join([
        f"machine: {m['cpu']} ({m['cores']} cores, load {m['load_avg_1m']} at start), {m['platform']}, "
        f"MLX {m['mlx']} on {m['device']}",
        f"BLAS: {m['blas']}",
        f"weights: {report['weights']}; dtype {report['dtype']}, quantize {report['quantize']}, "
        f"adapter mode {report['adapter_mode']}, batch tokens {report['batch_tokens']}",
        "float32 matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()),
        f"timed: {report['timed']}; {report['warmup']} warmup + {report['repeats']} timed runs per row",
        "", head])


def _line(r: dict[str, Any], peers: list[str]) -> str:
    line = (f"{r['name']:<12}{r['batch']:>6}{r['tokens']:>8}{r['mean_ms']:>10.1f}{r['p50_ms']:>10.1f}"
            f"{r['tokens_per_s']:>9.1f}{r['gflops']:>9.1f}{r['pct_peak']:>7.1f}{r['peak_mem_mb']:>8.0f}"
            f"{r['max_rss_mb']:>8.0f}")
    for peer in peers:
        t, width = r["peers"].get(peer), _peer_width(peer)
        line += f"{t['p50_ms']:>{width}.1f}{t['min_cos']:>8.5f}" if t else f"{'-':>{width}}{'-':>8}"
    if r["vs_best_peer"] is not None:
        line += f"{r['vs_best_peer']:>8.2f}x {r['best_peer']}"
    return line


def _peer_width(peer: str) -> int:
    return max(12, len(peer) + 6)
