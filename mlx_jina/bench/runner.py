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
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import mlx.core as mx
import numpy as np
from tqdm import tqdm

from mlx_jina import blas
from mlx_jina.batching import AdapterMode
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
    max_rss_mb: float  # process high-water RSS so far (includes the reference model when compared)
    reference: dict[str, float] = field(default_factory=dict)  # torch: mean_ms, tokens_per_s, speedup, min_cos


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


def time_calls(call: Callable[[], Any], *, warmup: int, repeats: int, progress: tqdm) -> tuple[list[float], Any]:
    """Wall times in seconds of `repeats` calls after `warmup` untimed ones, and the last result."""
    result = None
    for _ in range(warmup):
        result = call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
        progress.update(1)
    return times, result


def bench_rows(embedder: Embedder, workloads: list[Workload], *, batch_tokens: int, adapter_mode: AdapterMode,
               warmup: int, repeats: int, peak_gflops: float, lora_rank: int | None,
               reference: Callable[[Workload], Any] | None = None,
               on_row: Callable[[RowResult], None] = lambda _: None) -> list[RowResult]:
    """Time every workload on MLX (and on `reference`, a callable returning vectors, if given);
    `on_row` sees each row as soon as it is measured (long runs keep what they measured)."""
    args = embedder.model.args
    runs = len(workloads) * repeats * (2 if reference else 1)
    results = []
    smallest = min(workloads, key=lambda w: w.tokens)  # one untimed pass per path: first-call costs
    run_mlx(embedder, smallest, batch_tokens=batch_tokens, adapter_mode=adapter_mode)
    if reference:
        reference(smallest)
    with tqdm(total=runs, desc="bench", unit="run", file=sys.stderr, disable=None) as progress:
        for w in workloads:
            progress.set_postfix_str(w.name)
            mx.reset_peak_memory()
            times, vectors = time_calls(
                functools.partial(run_mlx, embedder, w, batch_tokens=batch_tokens, adapter_mode=adapter_mode),
                warmup=warmup, repeats=repeats, progress=progress)
            mean = statistics.fmean(times)
            gflops = forward_flops(args, [len(r) for r in w.ids], lora_rank) / mean / 1e9
            row = RowResult(w.name, w.description, len(w.ids), w.tokens, 1e3 * mean, 1e3 * statistics.median(times),
                            w.tokens / mean, gflops, 100 * gflops / peak_gflops, mx.get_peak_memory() / 2**20,
                            max_rss_mb())
            if reference:
                ref_times, ref_vectors = time_calls(functools.partial(reference, w), warmup=warmup, repeats=repeats,
                                                    progress=progress)
                ref_mean = statistics.fmean(ref_times)
                row.reference = {"mean_ms": 1e3 * ref_mean, "p50_ms": 1e3 * statistics.median(ref_times),
                                 "tokens_per_s": w.tokens / ref_mean, "speedup": ref_mean / mean,
                                 "min_cos": min_cosine(vectors, ref_vectors)}
                row.max_rss_mb = max_rss_mb()
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
