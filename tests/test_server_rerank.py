"""`mlx-jina serve --reranker`: POST /v1/rerank (Jina/Cohere shape) and /v1/search "rerank": true,
on a real server process spoken to with httpx; scores are checked against the tiny reranker
called directly in this process."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import indexed_db, write_notes

from mlx_jina.server.process import ServerProcess, running_server

TOKEN = "rerank-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_INPUTS = 8
DOCS = ["Light travels at about 300,000 km per second.", "Paris is the capital of France.",
        "Das Licht ist schnell.", "def speed(): return 'c'"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny, tiny_path: Path, tiny_reranker_path: Path) -> Iterator[ServerProcess]:
    db = indexed_db(tmp_path_factory, tiny, write_notes(tmp_path_factory.mktemp("notes"), {
        "light.md": "# Light\n\nLight travels at 300,000 km per second in a vacuum.\n",
        "bike.md": "# Bike\n\nOil the chain and check the brakes.\n"}))
    args = ["--model", str(tiny_path), "--reranker", str(tiny_reranker_path), "--db", str(db),
            "--api-token", TOKEN, "--max-inputs", str(MAX_INPUTS), "--batch-wait-ms", "20"]
    with running_server(args, startup_timeout=90) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def test_rerank_matches_the_library(client, tiny_reranker, tiny_reranker_path):
    expected = tiny_reranker.score("how fast is light?", DOCS)
    r = client.post("/v1/rerank", headers=AUTH, json={
        "model": tiny_reranker_path.name, "query": "how fast is light?",
        "documents": [DOCS[0], {"text": DOCS[1]}, *DOCS[2:]], "top_n": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == tiny_reranker_path.name
    assert [x["index"] for x in body["results"]] == list(np.argsort(-expected)[:3])
    np.testing.assert_allclose([x["relevance_score"] for x in body["results"]], np.sort(expected)[::-1][:3],
                               atol=1e-5)
    assert all(x["document"] == {"text": DOCS[x["index"]]} and "truncated" not in x for x in body["results"])
    prompts = tiny_reranker.build_prompts("how fast is light?", DOCS)
    assert body["usage"]["total_tokens"] == sum(len(p.ids) for p in prompts)
    bare = client.post("/v1/rerank", headers=AUTH, json={"query": "q", "documents": ["a", "b"],
                                                         "return_documents": False}).json()
    assert len(bare["results"]) == 2 and all("document" not in x for x in bare["results"])


def test_concurrent_requests_are_each_right(client, tiny_reranker, server):
    queries = [f"question number {i} about light" for i in range(6)]

    def ask(q: str) -> list[float]:
        r = client.post("/v1/rerank", headers=AUTH, json={"query": q, "documents": DOCS})
        assert r.status_code == 200, r.text
        return [x["relevance_score"] for x in sorted(r.json()["results"], key=lambda x: x["index"])]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        got = list(pool.map(ask, queries))
    for q, scores in zip(queries, got):
        np.testing.assert_allclose(scores, tiny_reranker.score(q, DOCS), atol=1e-5)
    health = client.get("/health").json()
    assert health["rerank"] is not None


@pytest.mark.parametrize("body, status, code", [
    ({"query": "", "documents": ["a"]}, 400, "INPUT_INVALID"),
    ({"query": "q", "documents": []}, 400, "INPUT_INVALID"),
    ({"query": "q", "documents": ["a", 5]}, 400, "INPUT_INVALID"),
    ({"query": "q", "documents": [{"txt": "a"}]}, 400, "INPUT_INVALID"),
    ({"query": "q", "documents": "a"}, 400, "INPUT_INVALID"),
    ({"query": "q", "documents": ["a"], "top_n": 0}, 400, "INPUT_INVALID"),
    ({"query": "q", "documents": ["a"] * (MAX_INPUTS + 1)}, 400, "INPUT_INVALID"),
    ({"query": "q", "documents": ["a"], "model": "other-model"}, 400, "INPUT_MODEL_NOT_FOUND"),
    ({"query": "q", "documents": ["light " * 9000], "truncate": False}, 400, "INPUT_TOKEN_LIMIT_EXCEEDED"),
])
def test_bad_requests_are_4xx_with_a_reason(client, body, status, code):
    r = client.post("/v1/rerank", headers=AUTH, json=body)
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert r.json()["detail"]


def test_rerank_needs_the_token(client):
    assert client.post("/v1/rerank", json={"query": "q", "documents": ["a"]}).status_code == 401


def test_search_with_rerank(client, tiny_reranker):
    r = client.post("/v1/search", headers=AUTH, json={"query": "light speed", "k": 1, "rerank": True,
                                                      "mode": "keyword"})
    assert r.status_code == 200, r.text
    hits = r.json()["data"]
    assert len(hits) == 1 and 0 <= hits[0]["rerank_score"] <= 1 and hits[0]["score"] is not None
    plain = client.post("/v1/search", headers=AUTH, json={"query": "light speed", "mode": "keyword"}).json()["data"]
    assert all(h["rerank_score"] is None for h in plain)
    bad = client.post("/v1/search", headers=AUTH, json={"query": "light", "rerank": "yes"})
    assert bad.status_code == 400 and "rerank" in bad.json()["detail"]
