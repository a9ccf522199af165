"""Qwen3-Reranker: the shared-prefix KV cache vs the naive path (every candidate's full prompt),
on random weights of the real Qwen3-Reranker-0.6B width (hidden 1024, 16/8 heads, MLP 3072) and
the real tokenizer. Per-layer cost is what the cache changes, so `--layers` (default 4 of 28)
keeps a CPU run short; the ratio holds for the full depth.

    python -m benchmarks.rerank_prefix [--layers 4] [--rounds 3]

Workloads: 1 query x N candidates of ~T tokens. Paths run interleaved within each round; medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib.metadata import version

import mlx.core as mx

import mlx_jina  # noqa: F401  (fast BLAS before anything imports mlx.core)
from mlx_jina.bench.random_reranker import random_reranker

WORKLOADS = ((10, 200), (40, 200), (10, 800))
WORDS = "the speed of light in vacuum is fixed by the definition of the metre and slower in glass".split()


def document(i: int, tokens: int) -> str:
    return " ".join(WORDS[(i + j) % len(WORDS)] for j in range(int(tokens * 0.85)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rr = random_reranker(layers=args.layers)
    print(f"mlx {version('mlx')} on {mx.default_device()}, {args.layers} layers of the 0.6B width, "
          f"{args.rounds} rounds, medians")
    print("| candidates x tokens | prompt tokens | naive ms/query | prefix-cache ms/query | speed-up |")
    print("|---|---|---|---|---|")
    for n, tokens in WORKLOADS:
        docs = [document(i, tokens) for i in range(n)]
        rows = [p.ids for p in rr.build_prompts("how fast is light in glass?", docs)]
        rr.score_ids(rows[:2])  # warm-up
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for cached in (False, True):
                start = time.perf_counter()
                rr.score_ids(rows, prefix_cache=cached)
                times[cached].append(time.perf_counter() - start)
        naive_ms, cached_ms = (statistics.median(times[c]) * 1000 for c in (False, True))
        print(f"| {n} x {tokens} | {sum(map(len, rows))} | {naive_ms:.0f} | {cached_ms:.0f} | "
              f"{naive_ms / cached_ms:.2f}x |",
              flush=True)


if __name__ == "__main__":
    main()
