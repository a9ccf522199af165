"""Timing the encoder on the workloads: repeats, mean/p50, tokens/s, memory, and achieved FLOP/s
against this machine's measured float32 matmul peak (so we know how close to the limit we are)."""

from __future__ import annotations

import functools
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import mlx.core as mx
import numpy as np
from tqdm import tqdm

from mlx_jina import blas
from mlx_jina.batching import AdapterMode
from mlx_jina.bench.peers import Peer
from mlx_jina.bench.workloads import Workload
from mlx_jina.embedder import Embedder
from mlx_jina.model.qwen3 import ModelArgs, layer_projections

PEAK_TOKENS = 2048  # rows of the GEMM used to measure the matmul peak (a long batch's MLP shape)


@dataclass
class RowResult:
    name: str
    description: str
    batch: int
    tokens: int
    mean_ms: float
    p50_ms: float
    tokens_per_s: float
    gflops: float  # achieved: forward_flops / mean time
    pct_peak: float  # gflops / the measured float32 matmul peak
    peak_mem_mb: float  # MLX's own high-water mark during the row (weights included)
    max_rss_mb: float  # process high-water RSS so far (includes the peers' models when compared)
    # per peer that ran the row: mean_ms, p50_ms, tokens_per_s, speedup (its p50 / MLX p50), min_cos vs MLX
    peers: dict[str, dict[str, float]] = field(default_factory=dict)
    best_peer: str | None = None  # the fastest peer (lowest p50) on this row
    vs_best_peer: float | None = None  # best peer p50 / MLX p50: >1 means MLX is faster than every peer


def forward_flops(args: ModelArgs, lengths: list[int], lora_rank: int | None) -> int:
    """Useful FLOPs of one forward pass over sequences of `lengths` (padding not counted): every
    projection (2·in·out per token), the unmerged LoRA terms (2·r·(in+out) per token and projection)
    and causal attention (QKᵀ and PV over L(L+1)/2 query-key pairs per head). Norms, RoPE, SwiGLU's
    elementwise product and the embedding lookup are ignored (well under 1%)."""
    shapes = layer_projections(args).values()
    per_token = sum(2 * a * b for a, b in shapes)
    if lora_rank:
        per_token += sum(2 * lora_rank * (a + b) for a, b in shapes)
    q = args.num_attention_heads * args.head_dim
    attention = sum(2 * 2 * q * n * (n + 1) // 2 for n in lengths)
    return args.num_hidden_layers * (per_token * sum(lengths) + attention)


def mlx_matmul_gflops(k: int, n: int, m: int = PEAK_TOKENS, repeats: int = 5) -> float:
    """Best-of-`repeats` float32 GEMM [m, k] @ [k, n] in MLX: the ceiling for this machine's BLAS."""
    a, b = mx.random.normal((m, k)), mx.random.normal((k, n))
    mx.eval(a, b)
    return best_gflops(lambda: mx.eval(a @ b), 2 * m * k * n, repeats)


def best_gflops(call: Callable[[], object], flops: int, repeats: int) -> float:
    call()  # warm up
    best = min(_seconds(call) for _ in range(repeats))
    return flops / best / 1e9


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run_mlx(embedder: Embedder, workload: Workload, *, batch_tokens: int, adapter_mode: AdapterMode) -> np.ndarray:
    """Embed a workload's ids. 'shared' or 'merged' on mixed tasks does what a user must do without
    per-row adapters: one call per adapter group."""
    if adapter_mode in ("auto", "per-row"):
        return embedder.embed_ids(workload.ids, workload.tasks, batch_tokens=batch_tokens, adapter_mode=adapter_mode)
    out = np.empty((len(workload.ids), embedder.dimensions[-1]), dtype=np.float32)
    for rows in workload.groups(lambda t: embedder.tasks[t].adapter).values():
        out[rows] = embedder.embed_ids([workload.ids[r] for r in rows], [workload.tasks[r] for r in rows],
                                       batch_tokens=batch_tokens, adapter_mode=adapter_mode)
    return out


def time_interleaved(calls: Mapping[str, Callable[[], Any]], *, warmup: int, repeats: int,
                     progress: tqdm) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Wall times in seconds of `repeats` rounds in which every engine runs once (the starting
    engine rotating, so load drift and cache effects fall on all alike), after `warmup` untimed
    calls each; and each engine's last result."""
    names = list(calls)
    results = {name: None for name in names}
    for name in names:
        for _ in range(warmup):
            results[name] = calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names[round_ % len(names):] + names[: round_ % len(names)]:
            start = time.perf_counter()
            results[name] = calls[name]()
            times[name].append(time.perf_counter() - start)
            progress.update(1)
    return times, results


def bench_rows(embedder: Embedder, workloads: list[Workload], *, batch_tokens: int, adapter_mode: AdapterMode,
               warmup: int, repeats: int, peak_gflops: float, lora_rank: int | None, peers: Sequence[Peer] = (),
               on_row: Callable[[RowResult], None] = lambda _: None) -> list[RowResult]:
    """Time every workload on MLX and, interleaved with it, on each peer that serves the row;
    `on_row` sees each row as soon as it is measured (long runs keep what they measured)."""
    args = embedder.model.args
    serving = {w.name: [p for p in peers if p.serves({embedder.tasks[t].adapter for t in w.tasks})]
               for w in workloads}
    results = []
    mlx = functools.partial(run_mlx, embedder, batch_tokens=batch_tokens, adapter_mode=adapter_mode)
    smallest = min(workloads, key=lambda w: w.tokens)  # one untimed pass per engine: first-call costs
    mlx(smallest)
    for peer in peers:
        peer.run(min((w for w in workloads if peer in serving[w.name]), key=lambda w: w.tokens, default=smallest))
    runs = sum(repeats * (1 + len(serving[w.name])) for w in workloads)
    with tqdm(total=runs, desc="bench", unit="run", file=sys.stderr, disable=None) as progress:
        for w in workloads:
            progress.set_postfix_str(w.name)
            mx.reset_peak_memory()
            calls = {"mlx": functools.partial(mlx, w)} | {p.name: functools.partial(p.run, w) for p in serving[w.name]}
            times, vectors = time_interleaved(calls, warmup=warmup, repeats=repeats, progress=progress)
            mean, p50 = statistics.fmean(times["mlx"]), statistics.median(times["mlx"])
            gflops = forward_flops(args, [len(r) for r in w.ids], lora_rank) / mean / 1e9
            row = RowResult(w.name, w.description, len(w.ids), w.tokens, 1e3 * mean, 1e3 * p50,
                            w.tokens / mean, gflops, 100 * gflops / peak_gflops, mx.get_peak_memory() / 2**20,
                            max_rss_mb())
            for peer in serving[w.name]:
                peer_p50 = statistics.median(times[peer.name])
                row.peers[peer.name] = {"mean_ms": 1e3 * statistics.fmean(times[peer.name]), "p50_ms": 1e3 * peer_p50,
                                        "tokens_per_s": w.tokens / peer_p50, "speedup": peer_p50 / p50,
                                        "min_cos": min_cosine(vectors["mlx"], vectors[peer.name])}
            set_best_peer(row, "p50_ms")
            results.append(row)
            on_row(row)
    return results


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest row-wise cosine between two sets of raw vectors: proves both paths ran the same model."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def max_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "mlx": version("mlx"), "device": str(mx.default_device()),
            "blas": blas.status, "load_avg_1m": round(os.getloadavg()[0], 2)}


def _cpu_name() -> str:
    if sys.platform == "darwin":
        result = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        return result.stdout.strip() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def set_best_peer(row: Any, time_key: str) -> None:
    """row.best_peer: the fastest of row.peers by `time_key`; row.vs_best_peer: its speedup over MLX."""
    if row.peers:
        row.best_peer = min(row.peers, key=lambda name: row.peers[name][time_key])
        row.vs_best_peer = row.peers[row.best_peer]["speedup"]
