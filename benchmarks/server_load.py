"""Load test for `mlx-jina serve`: requests/s and p50/p99 latency for N concurrent clients.

Not a test: run it by hand. By default it starts a server on the bundled tiny checkpoint (pass
--model for a real one, or --url to measure a server that is already running) and, for each
client count, has every client send requests back to back (each: --texts short texts, mixed
tasks) for --seconds. It prints one table row per client count, plus the server's batching
counters: requests per forward round shows how much micro-batching happened.

    python -m benchmarks.server_load --clients 1,8,32 --seconds 10   # from the repository root
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import nullcontext
from typing import Any

import httpx
import numpy as np

from mlx_jina.embedder import TINY_CHECKPOINT
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrent client counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each level")
    parser.add_argument("--texts", type=int, default=1, help="texts per request")
    parser.add_argument("--url", default=None, help="an already running server (default: start one)")
    parser.add_argument("--token", default=None, help="API token of the server at --url")
    parser.add_argument("--model", default=str(TINY_CHECKPOINT), help="checkpoint for the started server")
    parser.add_argument("--serve-args", default="", help="extra `mlx-jina serve` options, e.g. '--batch-wait-ms 5'")
    args = parser.parse_args()
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
