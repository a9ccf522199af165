"""What a user waits for: `mlx-jina search` end to end, process start to exit, three ways.

Not a test: run it by hand from the repository root; it prints markdown tables (BENCHMARKS.md):

    taskset -c 1 python -m benchmarks.search_latency --rounds 5     # one core; ~5 min on this CPU

For each checkpoint (the exact v5-small shape with random weights, written once in the published
layout, bfloat16 like the published file, to --checkpoint; then the bundled tiny one) it indexes
--notes with `mlx-jina index`, starts `mlx-jina serve` on a free local port, and times subprocesses
of `mlx-jina search QUERY --db DB --model FOLDER --json --verbose`, interleaved each round:

  in-process   --no-server: the search process loads the model and embeds the query itself
  via serve    $MLX_JINA_SERVER points at the running server, which embeds the query
  keyword      --mode keyword: no model at all (the floor: process start, imports, SQLite)

Every search names the checkpoint with --model, as a user with $MLX_JINA_MODEL set does; it is the
model the index records, so a server serving it may embed the query. Each path's hits are
checked equal to the in-process ones (same vectors, same results), and the through-server path is
checked to have really gone through the server. The --verbose columns are search's own report:
the time to embed through the server (for in-process, that is 0: the probe is skipped), and the
search itself with any model load and in-process embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlx_jina.embedder import TINY_CHECKPOINT
from mlx_jina.server.config import SERVER_ENV
from mlx_jina.server.process import running_server

REPO = Path(__file__).resolve().parent.parent
DEFAULT_NOTES = REPO / "examples" / "notes"
DEFAULT_QUERY = "how did we fix the login bug"
PATHS = ("in-process (--no-server)", "via serve", "keyword (--mode keyword)")
VERBOSE = re.compile(r"^(?P<note>.*); server probe (?P<probe>\d+) ms, search .*?(?P<search>\d+) ms$", re.M)


@dataclass
class Timings:
    """One path's runs: wall seconds, and the --verbose report's (probe/embed ms, search ms)."""

    seconds: list[float] = field(default_factory=list)
    probe_ms: list[float] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)


def mlx_jina_command() -> list[str]:
    """The console script users run, from this interpreter's environment."""
    script = Path(sys.executable).parent / "mlx-jina"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from mlx_jina.cli import main; main()"]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any MLX_JINA_* setting (a user's $MLX_JINA_SERVER or model), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLX_JINA_")}
    return env | extra


def build_index(model: Path, notes: Path, db: Path) -> tuple[float, int]:
    """`mlx-jina index NOTES --db DB --model MODEL`: (seconds, chunks embedded)."""
    start = time.perf_counter()
    done = subprocess.run([*mlx_jina_command(), "index", str(notes), "--db", str(db), "--model", str(model), "--json"],
                          capture_output=True, text=True, env=clean_env(), check=False)
    if done.returncode != 0:
        raise SystemExit(f"mlx-jina index failed ({done.returncode}):\n{done.stderr}")
    return time.perf_counter() - start, json.loads(done.stdout.splitlines()[-1])["chunks_embedded"]


def timed_search(query: str, db: Path, flags: Sequence[str],
                 env: dict[str, str]) -> tuple[float, list[str], str, float, float]:
    """(wall seconds from process start to exit, the hits' chunk ids, and --verbose's report: how the
    query was embedded, the server probe's ms, the search's ms)."""
    start = time.perf_counter()
    done = subprocess.run([*mlx_jina_command(), "search", query, "--db", str(db), "--json", "--verbose", *flags],
                          capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    report = VERBOSE.search(done.stderr)
    if done.returncode != 0 or report is None:
        raise SystemExit(f"mlx-jina search {' '.join(flags)} failed ({done.returncode}) or did not report:\n"
                         f"{done.stderr}")
    hits = [json.loads(line)["chunk_id"] for line in done.stdout.splitlines()]
    return seconds, hits, report["note"], float(report["probe"]), float(report["search"])


@dataclass
class Measured:
    model: Path
    chunks: int
    index_s: float
    serve_s: float
    timings: dict[str, Timings]

    def summary(self) -> str:
        rounds = len(next(iter(self.timings.values())).seconds)
        return (f"{self.model.name}: {self.chunks} chunks indexed in {self.index_s:.1f} s; `mlx-jina serve` up in "
                f"{self.serve_s:.1f} s; {rounds} rounds")


def measure(model: Path, notes: Path, query: str, rounds: int) -> Measured:
    """Index, serve, and time the three paths interleaved, `rounds` times."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "index.db"
        index_s, chunks = build_index(model, notes, db)
        serve_start = time.perf_counter()
        with running_server(["--model", str(model)], startup_timeout=600) as server:
            serve_s = time.perf_counter() - serve_start
            named = ["--model", str(model)]
            runs = {PATHS[0]: ([*named, "--mode", "hybrid", "--no-server"], clean_env()),
                    PATHS[1]: ([*named, "--mode", "hybrid"], clean_env(**{SERVER_ENV: server.url})),
                    PATHS[2]: ([*named, "--mode", "keyword"], clean_env())}
            timings = {name: Timings() for name in runs}
            expected: list[str] | None = None
            for _ in range(rounds):
                for name, (flags, env) in runs.items():
                    seconds, hits, note, probe_ms, search_ms = timed_search(query, db, flags, env)
                    if name == PATHS[1] and "embedded by the server" not in note:
                        raise SystemExit(f"the query did not go through the server: {note}")
                    if name != PATHS[2]:
                        expected = hits if expected is None else expected
                        if hits != expected:
                            raise SystemExit(f"{name} found other hits than in-process: {hits} vs {expected}")
                    timings[name].seconds.append(seconds)
                    timings[name].probe_ms.append(probe_ms)
                    timings[name].search_ms.append(search_ms)
    return Measured(model, chunks, index_s, serve_s, timings)


def table(results: dict[str, dict[str, Timings]]) -> str:
    """A markdown table: per checkpoint and path, median and min wall seconds, the --verbose medians,
    and each path's median over the through-server one."""
    lines = ["| checkpoint | path | median s | min s | --verbose: server embed ms | --verbose: search ms "
             "| vs via serve |", "|---|---|---|---|---|---|---|"]
    for checkpoint, timings in results.items():
        served = statistics.median(timings[PATHS[1]].seconds)
        for name, t in timings.items():
            median = statistics.median(t.seconds)
            lines.append(f"| {checkpoint} | {name} | {median:.2f} | {min(t.seconds):.2f} | "
                         f"{statistics.median(t.probe_ms):.0f} | {statistics.median(t.search_ms):.0f} | "
                         f"{median / served:.2f}x |")
    return "\n".join(lines)


def checkpoint_folder(path: Path) -> Path:
    """The random v5-small-shaped checkpoint at `path`, written there first if it is not yet."""
    if not (path / "model.safetensors").is_file():
        from mlx_jina.bench.random_weights import save_random_checkpoint

        start = time.perf_counter()
        save_random_checkpoint(path)
        print(f"wrote the random v5-small checkpoint to {path} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return path.resolve()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path(tempfile.gettempdir()) / "mlx-jina-v5-small-random",
                        help="where the random v5-small-shaped checkpoint is written (kept for the next run)")
    parser.add_argument("--notes", type=Path, default=DEFAULT_NOTES, help="the folder indexed for each checkpoint")
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tiny-only", action="store_true", help="only the bundled tiny checkpoint (seconds)")
    args = parser.parse_args(argv)
    models = [] if args.tiny_only else [("v5-small shape, random bf16", checkpoint_folder(args.checkpoint))]
    models.append(("tiny (weights/tiny)", TINY_CHECKPOINT.resolve()))
    load_before = os.getloadavg()
    measured = {label: measure(folder, args.notes, args.query, args.rounds) for label, folder in models}
    load_after = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"query {args.query!r}; {cores} core(s) allowed; load average (1 min) {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    for m in measured.values():
        print(f"- {m.summary()}")
    print()
    print(table({label: m.timings for label, m in measured.items()}))


if __name__ == "__main__":
    main()
