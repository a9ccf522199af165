"""Server settings; kept free of heavy imports so the CLI can show their defaults instantly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    loopback_only: bool = True  # bound to loopback: also refuse requests that name another host
    api_token: str | None = None  # required as a bearer token on every route but GET /health
    max_batch_tokens: int | None = None  # per round and forward pass, padding included; None: encode()'s
    batch_wait_ms: float = 2.0  # how long a round waits for more requests to join it
    max_inputs: int = 2048  # texts per request (OpenAI's limit)
    max_body_mb: float = 16.0
