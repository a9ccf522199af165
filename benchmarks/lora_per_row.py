"""Per-row LoRA kernels at the real v5-small shapes: what one decoder layer's seven LoRA terms
cost when every row of a batch picks its own adapter, two ways.

    python -m benchmarks.lora_per_row [--rounds 7]

- take + matmul: gather each row's (A, B) pair into [B, in, r] / [B, r, out] copies, then two
  batched matmuls (mlx_jina before this benchmark);
- gather_mm: `mx.gather_mm` indexes the stacked banks inside the matmul, no copies (what mlx-lm
  uses for switch layers).
The package's choice is `mlx_jina.model.lora.per_row_lora` (gather_mm). For scale, the table also
shows the layer's seven base projections alone and the shared-adapter term (one adapter for the
batch). Methods run interleaved within each round; medians over rounds (BENCHMARKS.md §3).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version

import mlx.core as mx

import mlx_jina  # noqa: F401  (fast BLAS before anything imports mlx.core)
from mlx_jina.bench.random_weights import LORA_RANK, V5_SMALL_CONFIG
from mlx_jina.model.qwen3 import ModelArgs, layer_projections
from mlx_jina.spec import package_spec

BATCHES = ((8, 64), (32, 32), (2, 256))  # (rows, tokens per row): short notes, many tiny chunks, long


def take_matmul(x: mx.array, a: mx.array, b: mx.array, rows: mx.array) -> mx.array:
    return (x @ a[rows]) @ b[rows]


def gather(x: mx.array, a: mx.array, b: mx.array, rows: mx.array) -> mx.array:
    return mx.gather_mm(mx.gather_mm(x, a, rhs_indices=rows), b, rhs_indices=rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()
    args = ModelArgs.from_config(V5_SMALL_CONFIG)
    adapters = len(package_spec().adapters)
    mx.random.seed(0)
    layer = []
    for fan_in, fan_out in layer_projections(args).values():
        w = mx.random.normal((fan_out, fan_in)) * fan_in**-0.5
        a = mx.random.normal((adapters, fan_in, LORA_RANK)) * fan_in**-0.5
        b = mx.random.normal((adapters, LORA_RANK, fan_out)) * 0.01
        layer.append((w, a, b, fan_in))
    mx.eval([t for p in layer for t in p[:3]])
    print(f"one decoder layer, 7 projections, {adapters} adapters of rank {LORA_RANK}; median ms of {opts.rounds} "
          f"interleaved rounds; MLX {version('mlx')} on {mx.default_device()}\n")
    print(f"{'rows x tokens':<14}{'base':>9}{'shared':>9}{'take+mm':>9}{'gather_mm':>11}{'take/gather':>13}"
          f"{'max |diff|':>12}")
    for rows_n, tokens in BATCHES:
        rows = mx.array([i % adapters for i in range(rows_n)], dtype=mx.uint32)
        xs = {fan_in: mx.random.normal((rows_n, tokens, fan_in)) for fan_in in {p[3] for p in layer}}
        mx.eval(list(xs.values()))
        methods: dict[str, Callable[[mx.array, mx.array, mx.array, mx.array, mx.array], mx.array]] = {
            "base": lambda x, w, a, b, r: x @ w.T,
            "shared": lambda x, w, a, b, r: (x @ a[1]) @ b[1],
            "take": lambda x, w, a, b, r: take_matmul(x, a, b, r),
            "gather": lambda x, w, a, b, r: gather(x, a, b, r),
        }
        diff = max(float(mx.abs(take_matmul(xs[f], a, b, rows) - gather(xs[f], a, b, rows)).max())
                   for _, a, b, f in layer)
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(opts.rounds + 1):  # the first round warms up
            for name, fn in methods.items():
                start = time.perf_counter()
                mx.eval([fn(xs[f], w, a, b, rows) for w, a, b, f in layer])
                times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(t[1:]) * 1e3 for name, t in times.items()}
        print(f"{f'{rows_n} x {tokens}':<14}{med['base']:>9.1f}{med['shared']:>9.1f}{med['take']:>9.1f}"
              f"{med['gather']:>11.1f}{med['take'] / med['gather']:>12.2f}x{diff:>12.1e}")


if __name__ == "__main__":
    main()
