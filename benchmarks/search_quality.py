"""Retrieval quality on the bundled notes: keyword, vector, hybrid and hybrid + rerank, measured on
hand-written queries with the notes that answer them (benchmarks/queries/example_notes.json).

    python -m benchmarks.search_quality [--model REPO|FOLDER] [--reranker REPO|FOLDER] [--candidates 30]

Metrics are per file (a note answers a query or not): recall@1 and recall@3 over the ranked
distinct files, and MRR (1 / rank of the first relevant file, 0 past 10). Defaults are the real
models (jina-embeddings-v5-text-small, Qwen3-Reranker-0.6B) when they load (cached or downloadable);
otherwise the bundled tiny embedding checkpoint and a tiny random reranker (built by
weights/make_tiny_reranker.py, needs the test extra). Tiny models measure the plumbing only: their
vectors and scores carry no meaning, so only the keyword row says anything about quality then.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlx_jina
from mlx_jina import KnowledgeBase
from mlx_jina.embedder import TINY_CHECKPOINT, Embedder
from mlx_jina.kb.search import Hit
from mlx_jina.rerank import Reranker

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "examples" / "notes"
QUERIES = Path(__file__).resolve().parent / "queries" / "example_notes.json"
DEPTH = 10  # files ranked per query (MRR counts a first relevant file up to here)
METHODS = ("keyword", "vector", "hybrid", "hybrid + rerank")


@dataclass(frozen=True)
class Scores:
    recall_at_1: float
    recall_at_3: float
    mrr: float
    ms_per_query: float


def ranked_files(hits: list[Hit]) -> list[str]:
    """Distinct files in the order their best chunk ranks."""
    return list(dict.fromkeys(h.rel for h in hits))


def recall_at(files: list[str], relevant: set[str], k: int) -> float:
    return len(relevant & set(files[:k])) / len(relevant)


def reciprocal_rank(files: list[str], relevant: set[str]) -> float:
    return next((1.0 / rank for rank, f in enumerate(files[:DEPTH], 1) if f in relevant), 0.0)


def evaluate(kb: KnowledgeBase, queries: list[dict], *, candidates: int,
             methods: tuple[str, ...] = METHODS) -> dict[str, Scores]:
    """Every method over every query, interleaved (query by query) so load hits all alike."""
    runs: dict[str, list[tuple[list[str], float]]] = {m: [] for m in methods}
    for q in queries:
        for method in methods:
            mode, _, rerank = method.partition(" + ")
            start = time.perf_counter()
            hits = kb.search(q["query"], k=DEPTH, mode=mode, per_doc=1, rerank=bool(rerank),
                             candidates=candidates if rerank else None)
            runs[method].append((ranked_files(hits), time.perf_counter() - start))
    out = {}
    for method, results in runs.items():
        rel = [set(q["relevant"]) for q in queries]
        out[method] = Scores(
            recall_at_1=statistics.fmean(recall_at(f, r, 1) for (f, _), r in zip(results, rel)),
            recall_at_3=statistics.fmean(recall_at(f, r, 3) for (f, _), r in zip(results, rel)),
            mrr=statistics.fmean(reciprocal_rank(f, r) for (f, _), r in zip(results, rel)),
            ms_per_query=statistics.median(s for _, s in results) * 1e3)
    return out


def load_queries(path: Path = QUERIES) -> list[dict]:
    queries = json.loads(path.read_text("utf-8"))["queries"]
    missing = {f for q in queries for f in q["relevant"] if not (NOTES / f).is_file()}
    if missing:
        raise SystemExit(f"{path}: relevant files not in {NOTES}: {sorted(missing)}")
    return queries


def embedder_or_tiny(model: str | None) -> tuple[Embedder, bool]:
    """(embedder, is_real): the named or default model, else the bundled tiny checkpoint."""
    try:
        return mlx_jina.load(model), True
    except Exception as exc:  # not cached and no hub here: say so and measure the plumbing
        if model:
            raise
        print(f"(real embedding model unavailable: {type(exc).__name__}; using the tiny checkpoint)")
        return mlx_jina.load(TINY_CHECKPOINT), False


def reranker_or_tiny(model: str | None, scratch: Path) -> tuple[Reranker, bool]:
    try:
        return mlx_jina.load_reranker(model), True
    except Exception as exc:
        if model:
            raise
        print(f"(real reranker unavailable: {type(exc).__name__}; using a tiny random one)")
        spec = importlib.util.spec_from_file_location("make_tiny_reranker", ROOT / "weights" / "make_tiny_reranker.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return mlx_jina.load_reranker(module.build(scratch)["qwen3-reranker-tiny"]), False


def table(scores: dict[str, Scores]) -> str:
    lines = ["| method | recall@1 | recall@3 | MRR | ms/query (median) |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {s.recall_at_1:.3f} | {s.recall_at_3:.3f} | {s.mrr:.3f} | {s.ms_per_query:.1f} |"
              for m, s in scores.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="embedding model (default: v5-text-small, else tiny)")
    parser.add_argument("--reranker", default=None, help="reranker (default: Qwen3-Reranker-0.6B, else tiny)")
    parser.add_argument("--candidates", type=int, default=30, help="hits recalled for the reranker")
    args = parser.parse_args()
    queries = load_queries()
    with tempfile.TemporaryDirectory() as tmp:
        embedder, real_embedder = embedder_or_tiny(args.model)
        reranker, real_reranker = reranker_or_tiny(args.reranker, Path(tmp))
        with KnowledgeBase(Path(tmp) / "notes.db", model=embedder, reranker=reranker) as kb:
            report = kb.index(NOTES)
            scores = evaluate(kb, queries, candidates=args.candidates)
    print(f"{len(queries)} queries over {report.seen} bundled notes ({report.chunks_embedded} chunks); "
          f"embedder: {embedder.info.model_id}; reranker: {reranker.info.model_id}; "
          f"{args.candidates} candidates reranked")
    if not (real_embedder and real_reranker):
        print("tiny model(s) in use: vector and rerank rows measure the plumbing only, not quality")
    print(table(scores))


if __name__ == "__main__":
    main()
