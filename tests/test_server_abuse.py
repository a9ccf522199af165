"""`mlx-jina serve` under abuse, end to end: cross-site calls, half-sent and idle connections,
clients that vanish, a large request among small ones, and more work than the server may hold.

One server (tiny checkpoint, token from a file, one allowed CORS origin, one ROW (a short text)
per round, short connection timeouts, a small queue) serves the module. Nothing here is timed: each
test waits for a counter of GET /health or for the server to close a socket.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from mlx_jina.embedder import Embedder
from mlx_jina.server.process import SERVE_COMMAND, ServerProcess, free_port, running_server

TOKEN = "file-token-456"
APP_ORIGIN = "app://obsidian.md"
ROW = "lorem ipsum dolor sit amet"  # every text below: one row, and one round (--max-batch-tokens)
QUEUE_ROWS = 2000  # --max-queued-tokens, in rows
PENDING_MB = 1
AUTH = {"Authorization": f"bearer {TOKEN}"}  # lower-case scheme on purpose


@pytest.fixture(scope="module")
def row_tokens(tiny: Embedder) -> int:
    return len(tiny.tokenize([ROW], ["text-matching"])[0])


@pytest.fixture(scope="module")
def server(tiny_path: Path, tmp_path_factory: pytest.TempPathFactory, row_tokens: int) -> Iterator[ServerProcess]:
    token_file = tmp_path_factory.mktemp("secret") / "token"
    token_file.write_text(TOKEN + "\n")
    args = ["--model", str(tiny_path), "--api-token-file", str(token_file), "--cors-origin", APP_ORIGIN,
            "--max-batch-tokens", str(row_tokens), "--batch-wait-ms", "0",
            "--max-queued-tokens", str(QUEUE_ROWS * row_tokens),
            "--max-pending-mb", str(PENDING_MB), "--header-timeout", "1", "--body-timeout", "1", "--keep-alive", "1"]
    with running_server(args, startup_timeout=60) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    # A new connection per request: reusing one the server closes after --keep-alive 1 would race.
    with httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        yield c


def stats(client: httpx.Client) -> dict[str, Any]:
    body = client.get("/health").json()
    return {**body["batching"], "client_disconnects": body["client_disconnects"]}


def wait_for(client: httpx.Client, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll GET /health until `condition(stats)` holds (the deadline only stops a hung test)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s = stats(client)
        if condition(s):
            return s
        time.sleep(0.02)
    raise AssertionError(f"condition never held; last stats {s}")


def raw_request(server: ServerProcess, body: dict[str, Any], *, send_body: bool = True) -> socket.socket:
    """A POST /v1/embeddings written straight to a socket, which the caller may close at will."""
    data = json.dumps(body).encode()
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"POST /v1/embeddings HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode())
    sock.sendall(data if send_body else data[:10])
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes this connection (reads until EOF; a stuck one fails by timeout)."""
    sock.settimeout(60)
    with sock:
        while chunk := sock.recv(65536):
            pass
    return chunk == b""


# ---- cross-site requests and CORS --------------------------------------------------------------
def test_preflight_from_the_allowed_origin(client: httpx.Client) -> None:
    r = client.options("/v1/embeddings", headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed


def test_allowed_origin_gets_cors_headers_even_on_errors(client: httpx.Client) -> None:
    ok = client.post("/v1/embeddings", json={"input": "hello"}, headers={**AUTH, "Origin": APP_ORIGIN})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == APP_ORIGIN
    denied = client.post("/v1/embeddings", json={"input": "hello"}, headers={"Origin": APP_ORIGIN})
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == APP_ORIGIN


@pytest.mark.parametrize("headers, status, code", [
    ({"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, 403, "FORBIDDEN_ORIGIN"),
    ({"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST", "Host": "evil.example"}, 403, "FORBIDDEN_HOST"),
])
def test_preflight_refusals(client: httpx.Client, headers: dict[str, str], status: int, code: str) -> None:
    r = client.options("/v1/embeddings", headers=headers)
    assert r.status_code == status and r.json()["code"] == code
    assert "access-control-allow-origin" not in r.headers


# ---- the token from a file, the OpenAI client ---------------------------------------------------
def test_openai_client_with_the_token_from_a_file(server: ServerProcess, tiny: Embedder) -> None:
    texts = ["a note about bikes", "another about cooking"]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0) as oa:
        got = oa.embeddings.create(model="jina-v5-tiny", input=texts, extra_body={"task": "retrieval.passage"})
        np.testing.assert_allclose([d.embedding for d in got.data], tiny.encode(texts, task="retrieval.passage"),
                                   atol=1e-5)
        with pytest.raises(openai.BadRequestError, match="random weights"):
            oa.embeddings.create(model="jina-embeddings-v5-text-small", input="hello")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as oa:
        with pytest.raises(openai.AuthenticationError):
            oa.embeddings.create(model="jina-v5-tiny", input="hello")
    assert "visible to every user" not in server.output()  # the file keeps the token out of `ps`


# ---- connections --------------------------------------------------------------------------------
def test_silent_and_half_sent_connections_are_closed(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    silent = socket.create_connection((host, int(port)))
    half_headers = socket.create_connection((host, int(port)))
    half_headers.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert closed_by_server(silent) and closed_by_server(half_headers)


def test_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert closed_by_server(sock)  # after answering, then idling past --keep-alive


def test_half_sent_and_abandoned_bodies_log_no_traceback(server: ServerProcess, client: httpx.Client) -> None:
    before = stats(client)["client_disconnects"]
    assert closed_by_server(raw_request(server, {"input": "x" * 1000}, send_body=False))  # body timeout
    abandoned = raw_request(server, {"input": "x" * 1000}, send_body=False)
    abandoned.close()  # the client disconnects mid-body
    wait_for(client, lambda s: s["client_disconnects"] >= before + 2)
    assert "Traceback" not in server.output()


# ---- fairness, cancellation, back-pressure ------------------------------------------------------
def test_large_request_is_split_small_ones_interleave_and_a_vanished_client_is_cancelled(
        server: ServerProcess, client: httpx.Client) -> None:
    rows = 1900
    before = stats(client)
    big = raw_request(server, {"input": [ROW] * rows})
    wait_for(client, lambda s: s["queued_requests"] >= 1 and s["rounds"] > before["rounds"] + 2)
    small = client.post("/v1/embeddings", json={"input": "a small request"}, headers=AUTH)
    assert small.status_code == 200
    during = stats(client)
    assert during["queued_requests"] >= 1  # the big request is still running: the small one did not wait for it
    big.close()
    after = wait_for(client, lambda s: s["cancelled"] > before["cancelled"])
    assert after["queued_tokens"] == 0 and after["texts"] - before["texts"] < rows + 1
    assert "Traceback" not in server.output()


def test_back_pressure(server: ServerProcess, client: httpx.Client) -> None:
    before = stats(client)
    big = raw_request(server, {"input": [ROW] * 1500})  # 3/4 of the queue
    wait_for(client, lambda s: s["queued_requests"] >= 1)
    busy = client.post("/v1/embeddings", json={"input": [ROW] * 1000}, headers=AUTH)  # fits alone, not now
    assert busy.status_code == 429 and busy.headers["retry-after"] and busy.json()["code"] == "SERVER_BUSY"
    too_big = client.post("/v1/embeddings", json={"input": [ROW] * (QUEUE_ROWS + 1)}, headers=AUTH)
    assert too_big.status_code == 413 and "split" in too_big.json()["detail"]
    bulky = client.post("/v1/embeddings", json={"input": "x" * (PENDING_MB * 1024 * 1024)}, headers=AUTH)
    assert bulky.status_code == 429 and bulky.headers["retry-after"]  # bodies held would pass --max-pending-mb
    big.close()
    wait_for(client, lambda s: s["cancelled"] > before["cancelled"] and s["queued_requests"] == 0)
    assert client.post("/v1/embeddings", json={"input": "still answering"}, headers=AUTH).status_code == 200


# ---- stopping -----------------------------------------------------------------------------------
def test_ctrl_c_on_an_idle_server_stops_it_cleanly(tiny_path: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT, with Python's own handler as in a terminal) after a request: exit 0, one
    line, no traceback, no abort from MLX's threads (it used to die with SIGABRT at exit)."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*SERVE_COMMAND, "--model", str(tiny_path), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                assert httpx.post(f"{url}/v1/embeddings", json={"input": "hello"}, timeout=30).status_code == 200
                break
            except httpx.TransportError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "mlx-jina serve: stopped" in output and "Traceback" not in output and "terminate called" not in output
