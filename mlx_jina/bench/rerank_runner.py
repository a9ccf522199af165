"""Timing the reranker on its rows: MLX (`Reranker.score_ids`, shared-prefix cache on, as every
user call runs) and each peer, interleaved round by round in one process (runner.time_interleaved)
so load changes hit all paths alike; medians, candidates/s, and the largest score difference to
each peer (same weights, same prompts: it should be float noise)."""

from __future__ import annotations

import functools
import statistics
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np
from tqdm import tqdm

from mlx_jina.bench.rerank_workloads import RerankWorkload
from mlx_jina.bench.runner import max_rss_mb, set_best_peer, time_interleaved
from mlx_jina.rerank import Reranker

Scorer = Callable[[RerankWorkload], np.ndarray]


@dataclass
class RerankRowResult:
    name: str
    description: str
    candidates: int
    tokens: int  # prompt tokens of all candidates (each a whole prompt)
    ms_per_query: float  # median
    mean_ms: float
    candidates_per_s: float  # candidates / median
    tokens_per_s: float  # prompt tokens / median
    peak_mem_mb: float  # MLX's own high-water mark during the row (weights included)
    max_rss_mb: float  # process high-water RSS so far (includes the peers' models)
    # per peer: ms_per_query, mean_ms, candidates_per_s, speedup (peer median / MLX median), max_abs_dscore
    peers: dict[str, dict[str, float]] = field(default_factory=dict)
    best_peer: str | None = None  # the fastest peer on this row
    vs_best_peer: float | None = None  # best peer median / MLX median: >1 means MLX is faster than every peer


def bench_rerank_rows(reranker: Reranker, workloads: list[RerankWorkload], *, warmup: int, repeats: int,
                      peers: Mapping[str, Scorer] | None = None,
                      on_row: Callable[[RerankRowResult], None] = lambda _: None) -> list[RerankRowResult]:
    """Time every workload on MLX and on each peer; `on_row` sees each row as soon as it is measured."""
    peers = dict(peers or {})
    paths: dict[str, Scorer] = {"mlx": lambda w: reranker.score_ids(w.rows), **peers}
    first = min(workloads, key=lambda w: w.tokens)
    for score in paths.values():  # one untimed call per path on two prompts: first-call costs
        score(RerankWorkload(first.name, first.description, first.rows[:2]))
    results = []
    runs = len(workloads) * repeats * len(paths)
    with tqdm(total=runs, desc="bench rerank", unit="run", file=sys.stderr, disable=None) as progress:
        for w in workloads:
            progress.set_postfix_str(w.name)
            mx.reset_peak_memory()
            times, scores = time_interleaved({name: functools.partial(score, w) for name, score in paths.items()},
                                             warmup=warmup, repeats=repeats, progress=progress)
            median = statistics.median(times["mlx"])
            row = RerankRowResult(w.name, w.description, w.candidates, w.tokens, 1e3 * median,
                                  1e3 * statistics.fmean(times["mlx"]), w.candidates / median, w.tokens / median,
                                  mx.get_peak_memory() / 2**20, max_rss_mb())
            for name in peers:
                peer = statistics.median(times[name])
                row.peers[name] = {
                    "ms_per_query": 1e3 * peer, "mean_ms": 1e3 * statistics.fmean(times[name]),
                    "candidates_per_s": w.candidates / peer, "speedup": peer / median,
                    "max_abs_dscore": float(np.max(np.abs(scores[name] - scores["mlx"])))}
            set_best_peer(row, "ms_per_query")
            results.append(row)
            on_row(row)
    return results
