"""Indexing and searching through a remote engine (`--embed-url`): a real `mlx-jina serve` for the
Jina style, and a small OpenAI-style stub standing in for vLLM (which cannot run here) that checks
the prompts it receives and embeds them the way a per-task merged model does."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import mlx_jina
from mlx_jina.cli import main
from mlx_jina.embedder import Embedder
from mlx_jina.errors import ModelMismatchError, RemoteEmbedderError
from mlx_jina.kb import KnowledgeBase
from mlx_jina.remote import RemoteEmbedder
from mlx_jina.server.process import ServerProcess, free_port, running_server

NOTES = {
    "cooking/shakshuka.md": "# Shakshuka\n\nEggs poached in a spiced tomato and pepper sauce.\n",
    "bikes/chain.md": "# Bike chain\n\nClean and oil the chain every few hundred kilometres.\n\n"
                      "## Tyres\n\nCheck pressure weekly.\n",
    "work/login.md": "# Login bug\n\nThe session cookie expired too early; fixed by refreshing the token.\n",
    "zh.md": "# 迁移\n\n上周我们把用户数据库从MySQL迁移到了PostgreSQL。\n",
}


def write_notes(folder: Path, count: int = 0) -> Path:
    for rel, text in NOTES.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    for i in range(count):  # extra files, so a run can die half-way
        (folder / f"extra/note-{i:03d}.md").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"extra/note-{i:03d}.md").write_text(f"# Note {i}\n\nItem number {i} of a long list.\n")
    return folder


def stored_vectors(db: Path) -> dict[str, np.ndarray]:
    """chunk text -> its stored int8 rescoring vector (as float)."""
    with KnowledgeBase(db) as kb:
        rows = kb.store.conn.execute("SELECT header || body, text_hash FROM chunks").fetchall()
        found = kb.store.vectors_for([h for _, h in rows])
    return {text: np.frombuffer(found[h][1], dtype=np.int8).astype(np.float32) for text, h in rows}


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def server(tiny_path: Path) -> Iterator[ServerProcess]:
    with running_server(["--model", str(tiny_path), "--batch-wait-ms", "5", "--max-inputs", "8"],
                        startup_timeout=60) as srv:
        yield srv


# ---- an OpenAI-style stub: what vLLM serving jina-embeddings-v5-text-small-retrieval does -----------
class Stub:
    """Serves `/v1/models` (OpenAI shape, no tasks) and `/v1/embeddings`: each input is embedded as
    given (no prompt added: a per-task merged model), so it only matches our local vectors when the
    client prefixed `Document: ` / `Query: ` itself. Records every input; can fail on purpose."""

    def __init__(self, model: Embedder, *, name: str = "jinaai/jina-embeddings-v5-text-small-retrieval") -> None:
        self.model, self.name = model, name
        self.inputs: list[str] = []
        self.requests = 0
        self.fail_first = 0          # answer 503 (with Retry-After) to this many requests first
        self.die_after: int | None = None  # after this many requests (or texts, below) answer 500 forever
        self.die_after_texts: int | None = None
        self.noise = 0.0             # rotate vectors away from the model's (another vector space)
        self.lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/models", self.models),
                                Route("/v1/embeddings", self.embed, methods=["POST"])])
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def models(self, request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": self.name, "object": "model", "owned_by": "vllm"}]})

    async def embed(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self.lock:
            self.requests += 1
            n = self.requests
        if n <= self.fail_first:
            return JSONResponse({"error": {"message": "busy"}}, status_code=503, headers={"Retry-After": "0"})
        if (self.die_after is not None and n > self.die_after) or \
                (self.die_after_texts is not None and len(self.inputs) >= self.die_after_texts):
            return JSONResponse({"error": {"message": "engine died"}}, status_code=500)
        texts = body["input"]
        self.inputs += texts
        ids = [e.ids for e in self.model.tokenizer.encode_batch(texts, add_special_tokens=True)]
        raw = self.model.embed_ids(ids, ["retrieval.passage"] * len(ids))  # the retrieval adapter, no prompt
        vecs = np.asarray(raw, dtype=np.float32)
        if self.noise:
            vecs = vecs + self.noise * np.random.default_rng(0).standard_normal(vecs.shape).astype(np.float32)
        return JSONResponse({"object": "list", "model": self.name,
                             "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                                      for i, v in enumerate(vecs)]})

    def __enter__(self) -> Stub:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---- Jina style: a real mlx-jina serve -----------------------------------------------------------------
def test_index_through_serve_equals_local_index(tmp_path: Path, server: ServerProcess, tiny: Embedder,
                                                 tiny_path: Path) -> None:
    notes = write_notes(tmp_path / "notes")
    remote_db, local_db = tmp_path / "remote.db", tmp_path / "local.db"
    result = CliRunner().invoke(main, ["index", str(notes), "--db", str(remote_db), "--embed-url", server.url,
                                       "--concurrency", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[-1])["added"] == len(NOTES)
    with KnowledgeBase(local_db, model=tiny) as kb:
        kb.index(notes)
    remote, local = stored_vectors(remote_db), stored_vectors(local_db)
    assert remote.keys() == local.keys() and len(remote) >= len(NOTES)  # the same chunks
    assert min(cos(remote[t], local[t]) for t in local) >= 0.9999       # the same vectors
    # a remotely built index is searchable in-process with the same model, and a local one remotely
    with KnowledgeBase(remote_db, model=tiny) as kb:
        assert kb.search("Shakshuka", k=1, mode="hybrid")[0].rel == "cooking/shakshuka.md"
    result = CliRunner().invoke(main, ["search", "oil the chain", "--db", str(local_db), "--embed-url", server.url,
                                       "--mode", "vector", "--json", "-k", "10"])
    assert result.exit_code == 0, result.output
    assert "bikes/chain.md" in {json.loads(line)["rel"] for line in result.output.splitlines() if line.startswith("{")}


def test_server_of_another_model_is_refused(tmp_path: Path, server: ServerProcess, tiny: Embedder,
                                            tiny_copy: Path) -> None:
    notes = write_notes(tmp_path / "notes")
    db = tmp_path / "index.db"
    with KnowledgeBase(db, model=mlx_jina.load(tiny_copy)) as kb:  # same weights, another model id
        kb.index(notes)
    before = stored_vectors(db)
    (notes / "new.md").write_text("# New\n\nA new note.\n")
    with pytest.raises(ModelMismatchError, match="different model"):
        with KnowledgeBase(db, embedder=RemoteEmbedder(server.url)) as kb:
            kb.index(notes)
    after = stored_vectors(db)
    assert after.keys() == before.keys() and all(np.array_equal(after[t], before[t]) for t in before)


def test_model_listing_says_what_a_remote_writer_records(server: ServerProcess, tiny_path: Path) -> None:
    remote = RemoteEmbedder(server.url)
    assert remote.served.style == "jina"
    assert remote.served.model_id == str(tiny_path.resolve())
    assert set(remote.tasks) == {"retrieval.query", "retrieval.passage", "text-matching", "classification",
                                 "clustering"}


def test_large_batches_are_split_on_the_servers_input_limit(server: ServerProcess, tiny: Embedder) -> None:
    texts = [f"text number {i}" for i in range(30)]  # the server takes at most 8 inputs per request
    remote = RemoteEmbedder(server.url, batch_tokens=100_000, concurrency=2)
    got = remote.encode(texts, task="text-matching", dimensions=64)
    want = tiny.encode(texts, task="text-matching", dimensions=64)
    assert got.shape == want.shape and np.min(np.sum(got * want, axis=1)) >= 0.9999


# ---- OpenAI style (vLLM): prompts prefixed client-side -------------------------------------------------
def test_openai_style_gets_the_prompts_and_matches_local(tmp_path: Path, tiny: Embedder, tiny_path: Path) -> None:
    notes = write_notes(tmp_path / "notes")
    db = tmp_path / "index.db"
    with Stub(tiny) as stub:
        remote = RemoteEmbedder(stub.url, tokenizer=tiny_path)
        assert remote.served.style == "openai" and set(remote.tasks) == {"retrieval.query", "retrieval.passage"}
        with KnowledgeBase(db, embedder=remote) as kb:
            kb.index(notes)
            passages = list(stub.inputs)
            hits = kb.search("chain oil", k=10, mode="vector")
        assert passages and all(t.startswith("Document: ") for t in passages)
        assert stub.inputs[len(passages):] == ["Query: chain oil"]
        assert "bikes/chain.md" in {h.rel for h in hits}
        local = stored_vectors(db)
        want = tiny.encode(list(local), task="retrieval.passage")
        from mlx_jina.kb import vectors
        int8 = np.frombuffer(b"".join(vectors.encode(want)[1]), dtype=np.int8).reshape(len(local), -1)
        assert min(cos(v, w.astype(np.float32)) for v, w in zip(local.values(), int8)) >= 0.9999
        with pytest.raises(mlx_jina.InputError, match="text-matching"):
            remote.encode(["x"], task="text-matching")  # a retrieval-merged model serves retrieval only


def test_probe_vectors_refuse_another_space_behind_the_same_name(tmp_path: Path, tiny: Embedder,
                                                                 tiny_path: Path) -> None:
    notes = write_notes(tmp_path / "notes")
    db = tmp_path / "index.db"
    with Stub(tiny) as stub:
        with KnowledgeBase(db, embedder=RemoteEmbedder(stub.url, tokenizer=tiny_path)) as kb:
            kb.index(notes)
        count = len(stored_vectors(db))
        (notes / "new.md").write_text("# New\n\nA new note about nothing.\n")
        stub.noise = 0.5  # same name, another space
        with pytest.raises(ModelMismatchError, match="cosine"):
            with KnowledgeBase(db, embedder=RemoteEmbedder(stub.url, tokenizer=tiny_path)) as kb:
                kb.index(notes)
        assert len(stored_vectors(db)) == count  # nothing written
        stub.noise = 1e-3  # a bf16-like difference passes
        with KnowledgeBase(db, embedder=RemoteEmbedder(stub.url, tokenizer=tiny_path)) as kb:
            assert kb.index(notes).added == 1


def test_retries_busy_server_then_names_url_and_status_when_it_stays_down(tmp_path: Path, tiny: Embedder,
                                                                          tiny_path: Path) -> None:
    with Stub(tiny) as stub:
        stub.fail_first = 2
        remote = RemoteEmbedder(stub.url, tokenizer=tiny_path, backoff_s=0.01, retries=3)
        assert remote.encode(["hello"], task="retrieval.passage").shape[0] == 1  # after two 503s
        stub.die_after = stub.requests
        with pytest.raises(RemoteEmbedderError, match=r"127\.0\.0\.1:\d+/v1/embeddings .*HTTP 500.*engine died"):
            remote.encode(["hello again"], task="retrieval.passage")


def test_a_server_dying_mid_run_leaves_the_db_intact_and_a_rerun_completes(tmp_path: Path, tiny: Embedder,
                                                                            tiny_path: Path) -> None:
    notes = write_notes(tmp_path / "notes", count=150)
    db = tmp_path / "index.db"
    with Stub(tiny) as stub:
        remote = RemoteEmbedder(stub.url, tokenizer=tiny_path, backoff_s=0.01, retries=1, concurrency=1,
                                batch_tokens=400)
        stub.die_after_texts = 100  # the probes and a first batch of files get through
        with pytest.raises(RemoteEmbedderError):
            with KnowledgeBase(db, embedder=remote) as kb:
                kb.index(notes)
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            committed = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        assert 0 < committed < len(NOTES) + 150
        stub.die_after_texts = None
        with KnowledgeBase(db, embedder=remote) as kb:
            report = kb.index(notes)
            assert report.unchanged == committed and report.added == len(NOTES) + 150 - committed
            assert kb.status()["files"] == len(NOTES) + 150


def test_a_killed_mlx_jina_serve_is_a_clear_error(tmp_path: Path, tiny_path: Path) -> None:
    notes = write_notes(tmp_path / "notes")
    with running_server(["--model", str(tiny_path)], startup_timeout=60) as srv:
        remote = RemoteEmbedder(srv.url, backoff_s=0.01, retries=1)
        srv.process.kill()
        srv.process.wait()
        with pytest.raises(RemoteEmbedderError, match="unreachable"):
            with KnowledgeBase(tmp_path / "index.db", embedder=remote) as kb:
                kb.index(notes)


def test_bad_remote_options_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(mlx_jina.InputError, match="http"):
        RemoteEmbedder("localhost:8765")
    with pytest.raises(mlx_jina.InputError, match="concurrency"):
        RemoteEmbedder("http://127.0.0.1:9", concurrency=0)
    result = CliRunner().invoke(main, ["index", str(tmp_path), "--db", str(tmp_path / "x.db"),
                                       "--embed-url", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code != 0 and "unreachable" in result.output and "Traceback" not in result.output
    shutil.rmtree(tmp_path, ignore_errors=True)
