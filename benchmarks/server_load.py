"""Load test for `mlx-jina serve`: requests/s and p50/p99 latency for N concurrent clients.

Not a test: run it by hand. By default it starts a server on the bundled tiny checkpoint (pass
--model for a real one, or --url to measure a server that is already running) and, for each
client count, has every client send requests back to back (each: --texts short texts, mixed
tasks) for --seconds. It prints one table row per client count, plus the server's batching
counters: requests per forward round shows how much micro-batching happened.

    python -m benchmarks.server_load --clients 1,8,32 --seconds 10   # from the repository root

With --memory it measures the server's memory under abuse instead: for each scenario a fresh
server gets --clients (default 32) concurrent maximum-size requests at once (a 15 MB text; 16
texts of 1 MB; as many texts of the model's full length as the queue takes; --max-inputs short
texts with full-size float output) and the table shows how many were answered, refused with 429
or 413, and the server's RSS: idle, peak (Linux: VmHWM; elsewhere sampled every 50 ms) and after.

    python -m benchmarks.server_load --memory
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from mlx_jina.embedder import TINY_CHECKPOINT
from mlx_jina.server.config import ServerConfig
from mlx_jina.server.process import running_server

TASKS = ("retrieval.query", "retrieval.passage", "text-matching")


async def client_loop(http: httpx.AsyncClient, client_id: int, texts: int, stop_at: float) -> list[float]:
    latencies, n = [], 0
    while time.perf_counter() < stop_at:
        body: dict[str, Any] = {"input": [f"client {client_id} request {n} sentence {j} about embeddings"
                                          for j in range(texts)], "task": TASKS[(client_id + n) % len(TASKS)]}
        start = time.perf_counter()
        r = await http.post("/v1/embeddings", json=body)
        r.raise_for_status()
        latencies.append(time.perf_counter() - start)
        n += 1
    return latencies


async def run_level(url: str, headers: dict[str, str], clients: int, texts: int, seconds: float) -> dict[str, float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
        await http.post("/v1/embeddings", json={"input": "warm up"})
        before = (await http.get("/health")).json()["batching"]
        start = time.perf_counter()
        per_client = await asyncio.gather(*(client_loop(http, c, texts, start + seconds) for c in range(clients)))
        elapsed = time.perf_counter() - start
        after = (await http.get("/health")).json()["batching"]
    latencies = np.array([x for xs in per_client for x in xs]) * 1000
    rounds = max(after["rounds"] - before["rounds"], 1)
    return {"clients": clients, "requests": len(latencies), "req_s": len(latencies) / elapsed,
            "texts_s": len(latencies) * texts / elapsed, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)),
            "req_per_round": (after["requests"] - before["requests"]) / rounds}


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process: /proc (Linux; VmHWM is the peak), else `ps` (macOS)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith(field + ":"))
        return int(line.split()[1]) / 1024
    return int(subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True).stdout) / 1024


class PeakRss:
    """The peak RSS of a process from now on: VmHWM on Linux, else sampled (a lower bound)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, rss_mb(pid), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        hwm = rss_mb(self.pid, "VmHWM") if sys.platform == "linux" else 0.0
        return max(self.peak, hwm)


def memory_scenarios(max_length: int) -> dict[str, dict[str, Any]]:
    """Request bodies of maximum size, each kind; all use truncate so none is a client error."""
    cfg = ServerConfig()
    long_text = "lorem ipsum dolor sit amet " * (max_length // 4)  # > max_length tokens with any tokenizer
    rows = min(cfg.max_inputs, cfg.max_queued_tokens // max_length)
    return {
        "one 15 MB text": {"input": "word " * 3_000_000, "truncate": True},
        "16 texts of 1 MB": {"input": ["word " * 200_000] * 16, "truncate": True},
        f"{rows} texts of {max_length} tokens": {"input": [long_text] * rows, "truncate": True},
        f"{cfg.max_inputs} short texts, float out": {"input": [f"note {i}" for i in range(cfg.max_inputs)]},
    }


async def burst(url: str, body: dict[str, Any], clients: int) -> Counter[int]:
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=clients)) as http:
        responses = await asyncio.gather(*(http.post("/v1/embeddings", json=body) for _ in range(clients)))
    return Counter(r.status_code for r in responses)


def run_memory(model: str, serve_args: list[str], clients: int) -> None:
    from mlx_jina import load

    max_length = load(model).max_length
    print(f"model {model}, {clients} concurrent requests per scenario, serve defaults {ServerConfig()}")
    print(f"{'scenario':<32} {'200':>5} {'429':>5} {'413':>5} {'idle MB':>8} {'peak MB':>8} {'after MB':>8} {'s':>6}")
    for name, body in memory_scenarios(max_length).items():
        with running_server(["--model", model, *serve_args]) as proc:
            pid = proc.process.pid
            httpx.post(f"{proc.url}/v1/embeddings", json={"input": "warm up"}, timeout=60).raise_for_status()
            idle = rss_mb(pid)
            peak = PeakRss(pid)
            start = time.perf_counter()
            codes = asyncio.run(burst(proc.url, body, clients))
            elapsed = time.perf_counter() - start
            top = peak.stop()
            time.sleep(1.0)  # the idle hook returns cached memory once the queue runs empty
            after = rss_mb(pid)
        print(f"{name:<32} {codes[200]:>5} {codes[429]:>5} {codes[413]:>5} {idle:>8.0f} {top:>8.0f} {after:>8.0f} "
              f"{elapsed:>6.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrent client counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each level")
    parser.add_argument("--texts", type=int, default=1, help="texts per request")
    parser.add_argument("--url", default=None, help="an already running server (default: start one)")
    parser.add_argument("--token", default=None, help="API token of the server at --url")
    parser.add_argument("--model", default=str(TINY_CHECKPOINT), help="checkpoint for the started server")
    parser.add_argument("--serve-args", default="", help="extra `mlx-jina serve` options, e.g. '--batch-wait-ms 5'")
    parser.add_argument("--memory", action="store_true", help="measure RSS under maximum-size requests instead")
    args = parser.parse_args()
    if args.memory:
        run_memory(args.model, args.serve_args.split(), int(args.clients.split(",")[-1]))
        return
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    server = nullcontext(None) if args.url else running_server(["--model", args.model, *args.serve_args.split()])
    with server as proc:
        url = args.url or (proc.url if proc else "")
        print(f"server {url}, model {args.model if not args.url else '(running)'}, {args.texts} text(s)/request, "
              f"{args.seconds:g} s per level")
        print(f"{'clients':>7} {'requests':>8} {'req/s':>8} {'texts/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'req/round':>9}")
        for clients in (int(c) for c in args.clients.split(",")):
            row = asyncio.run(run_level(url, headers, clients, args.texts, args.seconds))
            print(f"{row['clients']:>7} {row['requests']:>8} {row['req_s']:>8.1f} {row['texts_s']:>8.1f} "
                  f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['req_per_round']:>9.1f}")


if __name__ == "__main__":
    main()
