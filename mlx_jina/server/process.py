"""Run `mlx-jina serve` as a child process and wait until it answers: for apps that keep the
server as a sidecar, and for the tests and the load benchmark."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from mlx_jina.errors import ServerStartError

#: `python -m mlx_jina.cli` would need a __main__ module; this only needs the package.
SERVE_COMMAND = (sys.executable, "-c", "from mlx_jina.cli import main; main()", "serve")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (uvicorn does not report the port it got for 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[str]
    _log: IO[str]

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        self._log.flush()
        with open(self._log.name, encoding="utf-8", errors="replace") as f:
            return f.read()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_server(args: Sequence[str], *, host: str = "127.0.0.1", port: int | None = None,
                   startup_timeout: float = 60.0) -> Iterator[ServerProcess]:
    """Start `mlx-jina serve ARGS --host HOST --port PORT`, yield it once GET /health answers, stop
    it on exit. Raises ServerStartError, with the server's output, if it exits or never answers."""
    port = port or free_port(host)
    with tempfile.NamedTemporaryFile("w+", suffix=".log", encoding="utf-8") as log:
        proc = subprocess.Popen([*SERVE_COMMAND, *args, "--host", host, "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        server = ServerProcess(f"http://{host}:{port}", proc, log)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _answers(server.url):
                if proc.poll() is not None:
                    raise ServerStartError(f"mlx-jina serve exited with {proc.returncode}:\n{server.output()}")
                if time.monotonic() > deadline:
                    raise ServerStartError(f"mlx-jina serve did not answer within {startup_timeout} s:\n"
                                           f"{server.output()}")
                time.sleep(0.1)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
