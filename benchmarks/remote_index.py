"""Indexing through a remote engine (`index --embed-url`) vs in-process, and the cost of one request.

Not a test: run it by hand. It starts `mlx-jina serve` on the same checkpoint the in-process
indexer uses (default: the bundled tiny one, where the model costs almost nothing, so the table shows
what the HTTP path itself costs; pass --model for a real checkpoint), writes --files small notes,
and indexes them into a fresh database in-process and through the server at each concurrency,
interleaved, --repeats times. Medians, and each path's ratio to the best one measured in the run.

    python -m benchmarks.remote_index --files 400 --concurrency 1,4,16 --repeats 3   # from the repo root

Against vLLM (on the GPU box; the per-task merged repo, since vLLM knows no LoRA task switch):

    vllm serve jinaai/jina-embeddings-v5-text-small-retrieval --task embed --port 8000 \\
        --data-parallel-size 2                                    # one replica per GPU
    python -m benchmarks.remote_index --url http://gpu-box:8000/v1 --style openai \\
        --model jinaai/jina-embeddings-v5-text-small-retrieval --concurrency 4,16,64
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import mlx_jina
from mlx_jina.embedder import TINY_CHECKPOINT
from mlx_jina.kb import KnowledgeBase
from mlx_jina.remote import RemoteEmbedder
from mlx_jina.server.process import running_server


def write_notes(folder: Path, files: int) -> None:
    """Small Markdown notes (a heading and three short sections each)."""
    for i in range(files):
        path = folder / f"topic-{i % 20:02d}" / f"note-{i:04d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Note {i}\n\nMeeting notes number {i}: we discussed the release plan, the login bug "
                        f"and the database migration.\n\n## Follow-up {i}\n\nAction items for week {i % 52}: "
                        "review the pull request, update the runbook, book the train to Berlin.\n\n"
                        f"## Links\n\nSee ticket #{1000 + i} and the design doc.\n", encoding="utf-8")


def timed_index(notes: Path, make_kb: Callable[[Path], KnowledgeBase]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp, make_kb(Path(tmp) / "index.db") as kb:
        start = time.perf_counter()
        report = kb.index(notes)
        return time.perf_counter() - start, report.chunks_embedded


def median_ms(fn: Callable[[], Any], n: int = 50) -> float:
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(TINY_CHECKPOINT), help="checkpoint for serve and in-process")
    parser.add_argument("--url", default=None, help="measure a server that is already running instead")
    parser.add_argument("--style", choices=["jina", "openai"], default=None)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    local = mlx_jina.load(args.model) if args.url is None else None
    serve: AbstractContextManager[Any] = (running_server(["--model", args.model, "--max-inputs", "2048"])
                                          if args.url is None else nullcontext())
    with tempfile.TemporaryDirectory() as tmp, serve as server:
        url = args.url or server.url
        notes = Path(tmp) / "notes"
        write_notes(notes, args.files)
        remote_kwargs: dict[str, Any] = {"style": args.style, "tokenizer": args.model}
        if args.url:
            remote_kwargs["model"] = args.model
        paths: dict[str, Callable[[Path], KnowledgeBase]] = {}
        if local is not None:
            paths["in-process"] = lambda db: KnowledgeBase(db, embedder=local)
        def through_server(concurrency: int) -> Callable[[Path], KnowledgeBase]:
            return lambda db: KnowledgeBase(db, embedder=RemoteEmbedder(url, concurrency=concurrency, **remote_kwargs))

        for c in levels:
            paths[f"--embed-url, concurrency {c}"] = through_server(c)
        times: dict[str, list[float]] = {name: [] for name in paths}
        chunks = 0
        for _ in range(args.repeats):  # interleaved: each repeat runs every path once
            for name, make in paths.items():
                seconds, chunks = timed_index(notes, make)
                times[name].append(seconds)
        best = min(statistics.median(t) for t in times.values())
        print(f"{args.files} files, {chunks} chunks, model {Path(args.model).name}, {args.repeats} repeats "
              "(medians; the probe check included)\n")
        print("| path | seconds | chunks/s | vs best |\n|---|---|---|---|")
        for name, t in times.items():
            med = statistics.median(t)
            print(f"| {name} | {med:.2f} | {chunks / med:,.0f} | {best / med:.2f}x |")
        if local is not None:
            remote = RemoteEmbedder(url, tokenizer=args.model)
            text = ["how did we fix the login bug?"]
            via = median_ms(lambda: remote.encode(text, task="retrieval.query"))
            direct = median_ms(lambda: local.encode(text, task="retrieval.query"))
            print(f"\none short query: {via:.1f} ms through the server, {direct:.1f} ms in-process "
                  f"(overhead {via - direct:.1f} ms per request)")


if __name__ == "__main__":
    main()
