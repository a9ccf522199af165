"""Server settings; kept free of heavy imports so the CLI can show their defaults instantly."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOCAL_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"  # where `mlx-jina serve` listens by default
SERVER_ENV = "MLX_JINA_SERVER"  # where `mlx-jina search` looks for a running server instead


@dataclass(frozen=True)
class ServerConfig:
    loopback_only: bool = True  # bound to loopback: also refuse requests that name another host
    api_token: str | None = None  # required as a bearer token on every route but GET /health
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call (CORS); any other Origin is refused
    max_batch_tokens: int | None = None  # per round and forward pass, padding included; None: encode()'s
    batch_wait_ms: float = 2.0  # how long a round waits for more requests to join it
    max_inputs: int = 2048  # texts per request (OpenAI's limit)
    max_body_mb: float = 16.0
    max_pending_mb: float = 64.0  # request bodies admitted at once (read, queued or computing); more -> 429
    max_queued_tokens: int = 1 << 20  # token ids waiting for the model; more -> 429, one request over it -> 413
    header_timeout_s: float = 10.0  # a connection must send a request's headers within this
    body_timeout_s: float = 30.0  # ... and its body within this after the headers
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
