"""What apps call on `mlx-jina serve`, driven by the real clients apps use: the `ollama` Python
client on the Ollama routes, and the `mcp` SDK's streamable-HTTP client on /mcp.

One real server process (tiny checkpoint, API token, a knowledge base) serves the module; vectors
are checked against direct `encode` calls on the same checkpoint.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import numpy as np
import ollama
import pytest
from conftest import indexed_db, write_notes
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mlx_jina.embedder import Embedder
from mlx_jina.server.process import ServerProcess, running_server

TOKEN = "apps-token-456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAME = "jina-v5-tiny"  # the served name of the tiny checkpoint (its folder name)
TEXTS = ["The cat sat on the mat.", "Quantum chromodynamics", "Eine kurze deutsche Notiz."]


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_notes(tmp_path_factory.mktemp("notes"), {
        "cooking.md": "# Shakshuka\n\nEggs poached in a spiced tomato and pepper sauce.\n",
        "work/bikes.md": "# Bike chain\n\nClean and oil the chain every few hundred kilometres.\n"
                         + "".join(f"line {i}\n" for i in range(4, 40))})


@pytest.fixture(scope="module")
def kb_db(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder, notes: Path) -> Path:
    return indexed_db(tmp_path_factory, tiny, notes)


@pytest.fixture(scope="module")
def server(tiny_path: Path, kb_db: Path) -> Iterator[ServerProcess]:
    with running_server(["--model", str(tiny_path), "--api-token", TOKEN, "--db", str(kb_db),
                         "--max-inputs", "8"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> ollama.Client:
    return ollama.Client(host=server.url, headers=AUTH)


# ---- Ollama ------------------------------------------------------------------------------------
def test_embed_defaults_to_text_matching(client: ollama.Client, tiny: Embedder) -> None:
    response = client.embed(model=NAME, input=TEXTS)
    assert response.model == NAME
    np.testing.assert_allclose(response.embeddings, tiny.encode(TEXTS, task="text-matching"), atol=1e-5)
    tokens = sum(map(len, tiny.tokenize(TEXTS, ["text-matching"] * len(TEXTS))))
    assert response.prompt_eval_count == tokens and response.total_duration > 0
    single = client.embed(model=f"{NAME}:latest", input="just one")
    np.testing.assert_allclose(single.embeddings, [tiny.encode("just one", task="text-matching")], atol=1e-5)


@pytest.mark.parametrize("how", ["tag", "options", "body"])
def test_embed_task_by_tag_or_option(client: ollama.Client, server: ServerProcess, tiny: Embedder, how: str) -> None:
    expected = tiny.encode(TEXTS, task="retrieval.query", dimensions=64)
    if how == "tag":
        got = client.embed(model=f"{NAME}:retrieval.query", input=TEXTS, dimensions=64).embeddings
    elif how == "options":
        got = client.embed(model=NAME, input=TEXTS, dimensions=64, options={"task": "retrieval.query"}).embeddings
    else:  # Open WebUI's prefix field, named "task"
        r = httpx.post(f"{server.url}/api/embed", headers=AUTH,
                       json={"model": NAME, "input": TEXTS, "dimensions": 64, "task": "retrieval.query"})
        got = r.json()["embeddings"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not np.allclose(got, tiny.encode(TEXTS, task="text-matching", dimensions=64), atol=1e-3)


def test_legacy_embeddings(client: ollama.Client, tiny: Embedder) -> None:
    got = client.embeddings(model=f"{NAME}:retrieval.passage", prompt="a note about bikes").embedding
    np.testing.assert_allclose(got, tiny.encode("a note about bikes", task="retrieval.passage"), atol=1e-5)


def test_truncate_follows_ollama(client: ollama.Client, tiny: Embedder) -> None:
    long = "word " * (tiny.max_length + 50)
    got = client.embed(model=NAME, input=long).embeddings  # truncate defaults to true, as in Ollama
    np.testing.assert_allclose(got, [tiny.encode(long, task="text-matching", truncate=True)], atol=1e-5)
    with pytest.raises(ollama.ResponseError) as refused:
        client.embed(model=NAME, input=long, truncate=False)
    assert refused.value.status_code == 400 and "context length" in refused.value.error


def test_list_and_show(client: ollama.Client, tiny: Embedder) -> None:
    names = [m.model for m in client.list().models]
    assert names == [f"{NAME}:latest"] + [f"{NAME}:{task}" for task in tiny.tasks]
    entry = client.list().models[0]
    assert entry.size and entry.size > 0 and entry.digest and entry.details.family == "qwen3"
    shown = client.show(f"{NAME}:retrieval.query")
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo["qwen3.embedding_length"] == tiny.dimensions[-1]
    assert shown.modelinfo["qwen3.context_length"] == tiny.max_length
    assert shown.modelinfo["mlx_jina.task"] == "retrieval.query"
    assert "CC BY-NC 4.0" in shown.license


def test_example_client(server: ServerProcess) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "client_ollama.py"
    run = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60,
                         env=os.environ | {"MLX_JINA_URL": server.url, "MLX_JINA_API_TOKEN": TOKEN})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"served: {NAME}:latest") and len(lines) == 3 and "Shakshuka" in run.stdout


def test_probes(server: ServerProcess) -> None:
    for method in ("GET", "HEAD"):
        r = httpx.request(method, server.url + "/", headers=AUTH)
        assert r.status_code == 200 and (method == "HEAD" or r.text == "Ollama is running")
    assert httpx.get(server.url + "/api/version", headers=AUTH).json()["version"]
    assert [m["model"] for m in httpx.get(server.url + "/api/ps", headers=AUTH).json()["models"]][0] == f"{NAME}:latest"


@pytest.mark.parametrize("call, status, words", [
    (lambda c: c.embed(model="nomic-embed-text", input="a"), 404, "not found"),
    (lambda c: c.embed(model=f"{NAME}:no-such-task", input="a"), 404, "not found"),
    (lambda c: c.show("nomic-embed-text"), 404, "not found"),
    (lambda c: c.embed(model=NAME, input="a", dimensions=100), 400, "Matryoshka"),
    (lambda c: c.embed(model=NAME, input=["a"] * 9), 400, "at most 8"),
    (lambda c: c.embed(model=NAME, input=["ok", "  "]), 400, "empty"),
    (lambda c: c.embed(model=f"{NAME}:clustering", input="a", options={"task": "retrieval.query"}), 400, "different"),
    (lambda c: c.embed(model=NAME, input="a", options={"task": "summarize"}), 400, "task"),
])
def test_errors_in_ollama_shape(client: ollama.Client, call, status: int, words: str) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        call(client)
    assert refused.value.status_code == status and words in refused.value.error
    assert client.embed(model=NAME, input="still alive").embeddings  # and the server keeps serving


def test_raw_errors(server: ServerProcess) -> None:
    """What the client library cannot send: bad JSON, bad types; and no token."""
    url = server.url + "/api/embed"
    for body, status in ((b"{not json", 400), (b'{"input": [1, 2]}', 400), (b'{"input": "a", "truncate": "yes"}', 400),
                         (b"[]", 400)):
        r = httpx.post(url, content=body, headers=AUTH | {"Content-Type": "application/json"})
        assert r.status_code == status and isinstance(r.json()["error"], str), r.text
    assert httpx.post(url, json={"input": ""}, headers=AUTH).json()["embeddings"] == []  # as Ollama
    assert httpx.post(server.url + "/api/embeddings", json={"prompt": ""}, headers=AUTH).json() == {"embedding": []}
    assert httpx.get(server.url + "/api/nope", headers=AUTH).status_code == 404
    assert httpx.post(url, json={"input": "a"}).status_code == 401  # the token guards these routes too


def test_guard_refusals_reach_ollama_clients_as_text(server: ServerProcess) -> None:
    """The guards' refusals on /api/ are Ollama-shaped too, so the client shows the reason."""
    for client, status, words in ((ollama.Client(host=server.url), 401, "Authentication required"),
                                  (ollama.Client(host=server.url, headers=AUTH | {"Origin": "https://evil.example"}),
                                   403, "--cors-origin")):
        with pytest.raises(ollama.ResponseError) as refused:
            client.embed(model=NAME, input="a")
        assert refused.value.status_code == status and words in refused.value.error


# ---- MCP over streamable HTTP --------------------------------------------------------------------
async def mcp_calls(url: str, headers: dict[str, str]) -> tuple[list[str], Any, Any]:
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http, \
            Client(streamable_http_client(url + "/mcp", http_client=http)) as mcp:
        tools = [t.name for t in (await mcp.list_tools()).tools]
        found = await mcp.call_tool("search", {"query": "bike chain oil", "k": 2})
        note = await mcp.call_tool("get", {"path": "work/bikes.md", "max_lines": 1})
        return tools, found, note


def test_mcp_over_http(server: ServerProcess, notes: Path) -> None:
    tools, found, note = asyncio.run(mcp_calls(server.url, AUTH))
    assert sorted(tools) == ["get", "search", "status"]
    hits = found.structured_content["hits"]
    assert hits and hits[0]["path"].startswith(str(notes.resolve())) and hits[0]["lines"]
    assert note.structured_content["text"] == "# Bike chain" and note.structured_content["rel"] == "work/bikes.md"


@pytest.mark.parametrize("headers, status", [({}, 401), (AUTH | {"Host": "evil.example"}, 403)])
def test_mcp_over_http_is_guarded(server: ServerProcess, headers: dict[str, str], status: int) -> None:
    """The same token and Host checks as every other route."""
    r = httpx.post(server.url + "/mcp", headers=headers | {"Accept": "application/json, text/event-stream"},
                   json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == status
