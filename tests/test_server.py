"""`mlx-jina serve` end to end: a real server process on a free loopback port, spoken to over HTTP.

One server (tiny checkpoint, API token, small limits, a knowledge base) serves the whole module.
Results are checked against direct `encode` calls on the same checkpoint in this process.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import indexed_db, write_notes

from mlx_jina.cli import main
from mlx_jina.embedder import Embedder
from mlx_jina.server.process import ServerProcess, running_server

TOKEN = "test-token-123"
MAX_INPUTS = 16
MAX_BODY_MB = 0.25
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TEXTS = ["The cat sat on the mat.", "Quantum chromodynamics", "Eine kurze deutsche Notiz.", "x"]


@pytest.fixture(scope="module")
def kb_db(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder) -> Path:
    notes = write_notes(tmp_path_factory.mktemp("notes"), {
        "cooking.md": "# Shakshuka\n\nEggs poached in a spiced tomato and pepper sauce.\n",
        "bikes.md": "# Bike chain\n\nClean and oil the chain every few hundred kilometres.\n",
        "zh.txt": "迁移\n\n上周把数据库迁移到了PostgreSQL，发现登录错误。\n"})
    return indexed_db(tmp_path_factory, tiny, notes)


@pytest.fixture(scope="module")
def server(tiny_path: Path, kb_db: Path) -> Iterator[ServerProcess]:
    args = ["--model", str(tiny_path), "--api-token", TOKEN, "--db", str(kb_db), "--batch-wait-ms", "20",
            "--max-inputs", str(MAX_INPUTS), "--max-body-mb", str(MAX_BODY_MB)]
    with running_server(args, startup_timeout=60) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    """Sends no token by itself: each call below passes AUTH (or deliberately does not)."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def embed(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/embeddings", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def vectors(data: dict[str, Any]) -> np.ndarray:
    assert [d["index"] for d in data["data"]] == list(range(len(data["data"])))
    return np.array([d["embedding"] for d in data["data"]], dtype=np.float32)


def prompt_tokens(model: Embedder, texts: list[str], task: str, truncate: bool = False) -> int:
    return sum(len(row) for row in model.tokenize(texts, [task] * len(texts), truncate=truncate))


# ---- discovery ---------------------------------------------------------------------------------
def test_health_and_models(client: httpx.Client, tiny: Embedder) -> None:
    health = client.get("/health")  # open without the token
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["search"] is True
    assert not any(h.lower().startswith("access-control-") for h in health.headers)  # no CORS
    assert client.get("/v1/models").status_code == 401
    models = client.get("/v1/models", headers=AUTH).json()
    [entry] = models["data"]
    assert entry["id"] == "jina-v5-tiny" and entry["object"] == "model"
    assert "jina-embeddings-v5-text-small" not in entry["aliases"]  # the tiny checkpoint is not the real model
    assert entry["matryoshka_dimensions"] == [32, 64, 128] and entry["max_length"] == tiny.max_length


# ---- the Jina API request ----------------------------------------------------------------------
def test_jina_request_matches_encode(client: httpx.Client, tiny: Embedder) -> None:
    texts = ["first text", "second text", "third"]
    body = embed(client, model="jina-v5-tiny", task="retrieval.query", dimensions=64,
                 input=["first text", {"text": "second text"}, "third"])
    assert body["object"] == "list" and body["model"] == "jina-v5-tiny"
    assert all(d["object"] == "embedding" for d in body["data"])
    expected = tiny.encode(texts, task="retrieval.query", dimensions=64)
    np.testing.assert_allclose(vectors(body), expected, atol=1e-5)
    n = prompt_tokens(tiny, texts, "retrieval.query")  # "Query: " prefix included
    assert body["usage"] == {"prompt_tokens": n, "total_tokens": n}


def test_jina_defaults(client: httpx.Client, tiny: Embedder) -> None:
    """task text-matching, full dimensions, normalized, float, one string or one {"text"} object."""
    got = vectors(embed(client, model="jina-v5-tiny", input=TEXTS))
    np.testing.assert_allclose(got, tiny.encode(TEXTS, task="text-matching"), atol=1e-5)
    assert got.shape == (len(TEXTS), 128)
    assert not np.allclose(got, tiny.encode(TEXTS, task="retrieval.query"), atol=1e-3)  # the task matters
    for single in ("just one", {"text": "just one"}):
        np.testing.assert_allclose(vectors(embed(client, input=single))[0],
                                   tiny.encode("just one", task="text-matching"), atol=1e-5)


def test_normalized_false_returns_raw_pooled(client: httpx.Client, tiny: Embedder) -> None:
    got = vectors(embed(client, input=TEXTS, normalized=False, task="clustering"))
    np.testing.assert_allclose(got, tiny.encode(TEXTS, task="clustering", normalized=False), rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)


@pytest.mark.parametrize("embedding_type", ["float", "base64", "binary", "ubinary", "int8", "float16"])
def test_each_embedding_type(client: httpx.Client, tiny: Embedder, embedding_type: str) -> None:
    body = embed(client, input=TEXTS, embedding_type=embedding_type, dimensions=32)
    expected = tiny.encode(TEXTS, task="text-matching", dimensions=32, embedding_type=embedding_type)
    got = [d["embedding"] for d in body["data"]]
    if embedding_type == "base64":  # little-endian float32, as OpenAI's encoding_format=base64
        decoded = [np.frombuffer(base64.b64decode(s), dtype="<f4") for s in got]
        np.testing.assert_allclose(decoded, tiny.encode(TEXTS, task="text-matching", dimensions=32), atol=1e-5)
    elif embedding_type in ("float", "float16"):
        np.testing.assert_allclose(got, expected.astype(np.float32), atol=1e-3 if embedding_type == "float16" else 1e-5)
    elif embedding_type == "int8":  # an extension: per-vector scaled int8, one JSON int per dimension
        assert np.abs(np.array(got) - expected.astype(np.int64)).max() <= 1 and len(got[0]) == 32
    else:  # 32 dims -> 4 packed bytes per text, as JSON ints (int8 for binary, uint8 for ubinary)
        assert np.array_equal(np.array(got), expected.astype(np.int64)) and len(got[0]) == 4


def test_embedding_type_list_gives_an_object_per_item(client: httpx.Client) -> None:
    body = embed(client, input=TEXTS, embedding_type=["float", "ubinary", "binary", "base64"])
    for item in body["data"]:
        emb = item["embedding"]
        assert set(emb) == {"float", "ubinary", "binary", "base64"}
        floats = np.array(emb["float"], dtype=np.float32)
        assert emb["ubinary"] == np.packbits(floats > 0).tolist()
        assert emb["binary"] == [b - 128 for b in emb["ubinary"]]
        assert np.array_equal(np.frombuffer(base64.b64decode(emb["base64"]), dtype="<f4"), floats)
    one = embed(client, input="a", embedding_type=["ubinary"])["data"][0]["embedding"]
    assert set(one) == {"ubinary"} and len(one["ubinary"]) == 128 // 8


def test_truncate(client: httpx.Client, tiny: Embedder) -> None:
    long = "word " * 2000
    body = embed(client, input=[long, "short"], truncate=True)
    assert body["usage"]["prompt_tokens"] == tiny.max_length + prompt_tokens(tiny, ["short"], "text-matching")
    np.testing.assert_allclose(vectors(body), tiny.encode([long, "short"], task="text-matching", truncate=True),
                               atol=1e-5)


# ---- the OpenAI request ------------------------------------------------------------------------
def test_openai_request(client: httpx.Client, tiny: Embedder, tiny_path: Path) -> None:
    body = embed(client, model="jina-v5-tiny", input=TEXTS, encoding_format="float", user="u1")
    np.testing.assert_allclose(vectors(body), tiny.encode(TEXTS, task="text-matching"), atol=1e-5)
    b64 = embed(client, model=str(tiny_path), input=TEXTS, encoding_format="base64", dimensions=64,
                task="retrieval.passage")  # a Jina field in an OpenAI request (the SDK's extra_body)
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64["data"]])
    np.testing.assert_allclose(decoded, tiny.encode(TEXTS, task="retrieval.passage", dimensions=64), atol=1e-5)
    n = prompt_tokens(tiny, TEXTS, "retrieval.passage")
    assert b64["usage"] == {"prompt_tokens": n, "total_tokens": n}


# ---- micro-batching ----------------------------------------------------------------------------
def test_concurrent_requests_share_rounds_and_match_encode(client: httpx.Client, tiny: Embedder) -> None:
    tasks = ["retrieval.query", "retrieval.passage", "text-matching", "classification", "clustering"]
    jobs = [{"input": [f"request {i} text {j}" for j in range(1 + i % 3)], "task": tasks[i % 5],
             "dimensions": [None, 32, 64][i % 3]} for i in range(24)]
    before = client.get("/health").json()["batching"]

    async def fire() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=str(client.base_url), headers=AUTH, timeout=60) as ac:
            responses = await asyncio.gather(*(ac.post("/v1/embeddings", json=j) for j in jobs))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        return [r.json() for r in responses]

    results = asyncio.run(fire())
    after = client.get("/health").json()["batching"]
    for job, body in zip(jobs, results):
        expected = tiny.encode(job["input"], task=job["task"], dimensions=job["dimensions"])
        np.testing.assert_allclose(vectors(body), expected, atol=1e-5)
    requests = after["requests"] - before["requests"]
    rounds = after["rounds"] - before["rounds"]
    assert requests == len(jobs)
    assert rounds < requests and after["largest_round"] > 1  # requests shared forward passes


# ---- errors: always 4xx + a JSON body, and the server keeps answering --------------------------
def _post(body: Any = None, *, content: bytes | None = None, headers: dict[str, str] | None = None,
          path: str = "/v1/embeddings", method: str = "POST", auth: bool = True) -> dict[str, Any]:
    """httpx.Client.request arguments; sent without the client's token when auth=False."""
    json_type = {"Content-Type": "application/json"} if content is not None else {}
    headers = {**(AUTH if auth else {}), **json_type, **(headers or {})}
    return {"method": method, "url": path, "json": body, "content": content, "headers": headers}


ERROR_CASES = {
    "malformed JSON": (_post(content=b'{"input": ["a",'), 400, "INPUT_INVALID_JSON"),
    "not UTF-8": (_post(content=b'{"input": "\xff\xfe"}'), 400, "INPUT_INVALID_JSON"),
    "UTF-16 body": (_post(content='{"input": "a"}'.encode("utf-16")), 400, "INPUT_INVALID_JSON"),
    "text/plain body": (_post(content=b'{"input": "a"}', headers={"Content-Type": "text/plain"}), 415,
                        "UNSUPPORTED_MEDIA_TYPE"),
    "form body": (_post(content=b"input=a", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415,
                  "UNSUPPORTED_MEDIA_TYPE"),
    "no content type": (_post(content=b'{"input": "a"}', headers={"Content-Type": ""}), 415, "UNSUPPORTED_MEDIA_TYPE"),
    "no content length": (_post(content=iter([b'{"input": "a"}'])), 411, "LENGTH_REQUIRED"),
    "foreign Origin": (_post({"input": "a"}, headers={"Origin": "https://evil.example"}), 403, "FORBIDDEN_ORIGIN"),
    "null Origin": (_post({"input": "a"}, headers={"Origin": "null"}), 403, "FORBIDDEN_ORIGIN"),
    "real model name on tiny": (_post({"input": "a", "model": "jina-embeddings-v5-text-small"}), 400,
                                "INPUT_MODEL_NOT_FOUND"),
    "deeply nested": (_post(content=b"[" * 100_000 + b"]" * 100_000), 400, "INPUT_INVALID_JSON"),
    "not an object": (_post([1, 2]), 400, "INPUT_INVALID"),
    "no input": (_post({"model": "jina-v5-tiny"}), 400, "INPUT_INVALID"),
    "empty list": (_post({"input": []}), 400, "INPUT_INVALID"),
    "empty text": (_post({"input": ["ok", "  "]}), 400, "INPUT_INVALID"),
    "unknown task": (_post({"input": "a", "task": "separation"}), 400, "INPUT_INVALID"),
    "dims not Matryoshka": (_post({"input": "a", "dimensions": 100}), 400, "INPUT_INVALID"),
    "dims a string": (_post({"input": "a", "dimensions": "64"}), 400, "INPUT_INVALID"),
    "dims a bool": (_post({"input": "a", "dimensions": True}), 400, "INPUT_INVALID"),
    "unknown embedding_type": (_post({"input": "a", "embedding_type": "int4"}), 400, "INPUT_INVALID"),
    "embedding_type of a dict": (_post({"input": "a", "embedding_type": [{"x": 1}]}), 400, "INPUT_INVALID"),
    "unknown encoding_format": (_post({"input": "a", "encoding_format": "binary"}), 400, "INPUT_INVALID"),
    "both formats": (_post({"input": "a", "encoding_format": "float", "embedding_type": "float"}), 400,
                     "INPUT_INVALID"),
    "normalized a string": (_post({"input": "a", "normalized": "yes"}), 400, "INPUT_INVALID"),
    "unknown model": (_post({"input": "a", "model": "text-embedding-3-small"}), 400, "INPUT_MODEL_NOT_FOUND"),
    "token ids": (_post({"input": [[1, 2, 3]]}), 400, "INPUT_INVALID"),
    "image input": (_post({"input": [{"image": "https://x/y.png"}]}), 400, "INPUT_INVALID"),
    "too many inputs": (_post({"input": ["a"] * (MAX_INPUTS + 1)}), 400, "INPUT_INVALID"),
    "over-length": (_post({"input": ["ok", "word " * 2000]}), 400, "INPUT_TOKEN_LIMIT_EXCEEDED"),
    "body too large": (_post({"input": "a" * int(MAX_BODY_MB * 1024 * 1024)}), 413, "REQUEST_TOO_LARGE"),
    "wrong method": (_post(method="GET"), 405, "METHOD_NOT_ALLOWED"),
    "unknown path": (_post({"input": "a"}, path="/v1/embed"), 404, "RESOURCE_NOT_FOUND"),
    "no token": (_post({"input": "a"}, auth=False), 401, "AUTH_MISSING_API_KEY"),
    "wrong token": (_post({"input": "a"}, headers={"Authorization": "Bearer nope"}), 401, "AUTH_INVALID_API_KEY"),
    "other auth scheme": (_post({"input": "a"}, headers={"Authorization": f"Basic {TOKEN}"}), 401,
                          "AUTH_INVALID_API_KEY"),
    "DNS rebinding": (_post({"input": "a"}, headers={"Host": "evil.example:8765"}), 403, "FORBIDDEN_HOST"),
    "unparsable Host": (_post({"input": "a"}, headers={"Host": "[::1"}), 403, "FORBIDDEN_HOST"),
    "search: no query": (_post({"k": 3}, path="/v1/search"), 400, "INPUT_INVALID"),
    "search: bad k": (_post({"query": "eggs", "k": 0}, path="/v1/search"), 400, "INPUT_INVALID"),
    "search: bad mode": (_post({"query": "eggs", "mode": "fuzzy"}, path="/v1/search"), 400, "INPUT_INVALID"),
    "search: bad since": (_post({"query": "eggs", "since": "yesterday"}, path="/v1/search"), 400, "INPUT_INVALID"),
    "lone surrogate": (_post(content=b'{"input": ["ok", "caf\\udce9"]}'), 400, "INPUT_INVALID"),
    "search: lone surrogate": (_post(content=b'{"query": "\\ud83d eggs"}', path="/v1/search"), 400, "INPUT_INVALID"),
    "search: since 10**400": (_post(content=b'{"query": "eggs", "since": 1' + b"0" * 400 + b'}', path="/v1/search"),
                              200, None),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_case(client: httpx.Client, case: str) -> None:
    request, status, code = ERROR_CASES[case]
    r = client.request(**request)
    assert r.status_code == status, r.text
    if code is None:  # accepted: a clamp, not an error
        return
    body = r.json()
    assert body["code"] == code and body["detail"] and body["error"]["message"] == body["detail"]
    assert client.get("/health").status_code == 200
    assert embed(client, input="still alive")["data"][0]["embedding"]


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(client: httpx.Client, scheme: str) -> None:
    r = client.post("/v1/embeddings", json={"input": "a"}, headers={"Authorization": f"{scheme} {TOKEN}"})
    assert r.status_code == 200, r.text


def test_real_model_name_on_the_tiny_checkpoint_says_why(client: httpx.Client) -> None:
    r = client.post("/v1/embeddings", json={"input": "a", "model": "jinaai/jina-embeddings-v5-text-small"},
                    headers=AUTH)
    assert r.status_code == 400 and "jina-v5-tiny" in r.json()["detail"] and "random weights" in r.json()["detail"]


def test_token_on_the_command_line_warns(server: ServerProcess) -> None:
    assert "visible to every user in `ps`" in server.output()


def test_over_length_names_the_limit(client: httpx.Client, tiny: Embedder) -> None:
    r = client.post("/v1/embeddings", json={"input": "word " * 2000}, headers=AUTH)
    assert f"maximum of {tiny.max_length} tokens" in r.json()["detail"] and "truncate" in r.json()["detail"]


# ---- knowledge base search ---------------------------------------------------------------------
def test_search(client: httpx.Client) -> None:
    r = client.post("/v1/search", json={"query": "shakshuka eggs", "k": 1, "mode": "keyword"}, headers=AUTH)
    assert r.status_code == 200, r.text
    [hit] = r.json()["data"]
    assert hit["rel"] == "cooking.md" and hit["heading"] and hit["snippet"]
    hybrid = client.post("/v1/search", json={"query": "bike chain oil", "kinds": ["markdown"]}, headers=AUTH).json()
    assert {h["rel"] for h in hybrid["data"]} <= {"cooking.md", "bikes.md"} and hybrid["data"]
    assert any(h["vector_score"] is not None for h in hybrid["data"])  # the served model embedded the query


def test_search_by_a_chinese_keyword_marks_it_in_the_snippet(client: httpx.Client) -> None:
    for mode in ("keyword", "hybrid"):
        r = client.post("/v1/search", json={"query": "登录错误", "mode": mode}, headers=AUTH)
        assert r.status_code == 200, r.text
        hit = r.json()["data"][0]
        assert hit["rel"] == "zh.txt" and [hit["snippet"][s:e] for s, e in hit["highlights"]] == ["登录错误"]


def test_no_tracebacks_in_server_log(client: httpx.Client, server: ServerProcess) -> None:
    """Runs last in this module: no request above made the server fail (a 500 logs a traceback)."""
    client.get("/health")
    assert "Traceback" not in server.output() and "Exception" not in server.output()


# ---- bind safety (checked before the model loads: no server needed) ----------------------------
@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"], "--allow-remote"),
    (["--host", "192.168.1.5", "--allow-remote"], "API token"),
    (["--host", "example.com", "--allow-remote", "--api-token", ""], "API token"),
])
def test_non_loopback_bind_is_refused(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", *args, "--model", "/nonexistent"], env={"MLX_JINA_API_TOKEN": ""})
    assert result.exit_code == 2 and message in result.output


def test_cli_search_embeds_the_query_through_a_running_server(server: ServerProcess, kb_db: Path, tiny_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With a server up, `mlx-jina search` gets the same hits without loading the model, also when
    --model names the index's model; a server that cannot serve (here: a wrong token), --no-server
    or --dtype (asks for an in-process model) embed in-process, and --verbose says which."""
    from mlx_jina import embedder as embedder_module

    def search(*flags: str) -> tuple[list[dict[str, Any]], str]:
        result = CliRunner().invoke(main, ["search", "spiced tomato eggs", "--db", str(kb_db), "--mode", "hybrid",
                                           "--json", "--verbose", *flags])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        return [json.loads(line) for line in lines], result.stderr

    monkeypatch.setenv("MLX_JINA_SERVER", server.url)
    monkeypatch.setenv("MLX_JINA_API_TOKEN", "wrong")
    local, note = search()
    assert "embedding in-process" in note
    monkeypatch.setenv("MLX_JINA_API_TOKEN", TOKEN)
    loads: list[object] = []
    real_load = embedder_module.load
    monkeypatch.setattr(embedder_module, "load", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))
    remote, note = search()
    assert "query embedded by the server" in note and loads == []  # no model loaded in this process
    assert [(h["chunk_id"], round(h["score"], 5)) for h in remote] == [(h["chunk_id"], round(h["score"], 5))
                                                                     for h in local]
    named, note = search("--model", str(tiny_path))
    assert "query embedded by the server" in note and loads == [] and named == remote
    _, note = search("--no-server")
    assert "--no-server" in note
    _, note = search("--model", str(tiny_path), "--dtype", "float32")
    assert "--model given: embedding in-process" in note
