"""Two-stage search (KnowledgeBase.search(rerank=True), `mlx-jina search --rerank`) and the
`mlx-jina rerank` command, on the tiny embedder and the tiny Qwen3-Reranker (plumbing: the tiny
models' scores mean nothing, so every check compares against the reranker called directly)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mlx_jina.cli import main
from mlx_jina.errors import InputError
from mlx_jina.kb import RERANKER_ENV, KnowledgeBase


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny, tiny_reranker) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("notes")
    (root / "login.md").write_text("# Login\n\nWe fixed the login bug by renewing the session cookie.\n")
    (root / "food.md").write_text("# Food\n\nShakshuka: eggs poached in tomato sauce with cumin.\n")
    (root / "bike.md").write_text("# Bike\n\nOil the chain and check the brake pads every month.\n")
    (root / "trip.md").write_text("# Lisbon\n\nTrams, custard tarts and the login to the museum app.\n")
    kb = KnowledgeBase(root.parent / "kb.db", model=tiny, reranker=tiny_reranker)
    kb.index(root)
    return kb


def _texts(kb: KnowledgeBase, hits) -> list[str]:
    rows = dict(kb.store.conn.execute("SELECT id, header || body FROM chunks").fetchall())
    return [rows[h.chunk_id] for h in hits]


def test_search_reranks_the_recalled_candidates(indexed, tiny_reranker):
    recalled = indexed.search("login cookie", k=4, mode="keyword")
    reranked = indexed.search("login cookie", k=2, mode="keyword", rerank=True, candidates=4)
    expected = tiny_reranker.score("login cookie", _texts(indexed, recalled))
    best = sorted(range(len(recalled)), key=lambda i: -expected[i])[:2]
    assert [h.chunk_id for h in reranked] == [recalled[i].chunk_id for i in best]
    np.testing.assert_allclose([h.rerank_score for h in reranked], expected[best], atol=1e-6)
    assert [h.score for h in reranked] == [recalled[i].score for i in best]  # the recall score is kept
    assert all(h.rerank_score is None for h in recalled)


def test_hybrid_rerank_uses_default_candidates(indexed):
    hits = indexed.search("brake chain", k=3, rerank=True)
    assert 1 <= len(hits) <= 3 and all(0.0 <= h.rerank_score <= 1.0 for h in hits)
    assert [h.rerank_score for h in hits] == sorted((h.rerank_score for h in hits), reverse=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"rerank": True, "k": 5, "candidates": 4}, "candidates must be an integer from k=5"),
    ({"rerank": True, "candidates": 10**6}, "candidates must be an integer"),
    ({"rerank": "yes"}, "rerank must be true or false"),
    ({"instruction": "x"}, "pass it with rerank=True"),
])
def test_bad_rerank_options(indexed, kwargs, message):
    with pytest.raises(InputError, match=message):
        indexed.search("login", mode="keyword", **kwargs)


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), input=input, env=env)


def test_cli_rerank_arguments_and_stdin(tiny_reranker, tiny_reranker_path):
    docs = ["Light travels at 300,000 km/s.", "Paris is in France.", "Das Licht ist schnell."]
    expected = tiny_reranker.score("how fast is light?", docs)
    out = run("rerank", "how fast is light?", *docs, "--reranker", str(tiny_reranker_path))
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["index"] for r in lines] == list(np.argsort(-expected))
    np.testing.assert_allclose([r["relevance_score"] for r in lines], np.sort(expected)[::-1], atol=1e-6)
    assert lines[0]["document"] == docs[lines[0]["index"]] and lines[0]["truncated"] is False

    piped = run("rerank", "how fast is light?", "--top-n", "2", input="\n".join(docs) + "\n\n",
                env={RERANKER_ENV: str(tiny_reranker_path)})
    assert piped.exit_code == 0, piped.output
    assert [json.loads(line)["index"] for line in piped.stdout.splitlines()] == [r["index"] for r in lines[:2]]

    jsonl = run("rerank", "q", "--jsonl", "--reranker", str(tiny_reranker_path),
                input=json.dumps({"text": "two\nlines"}) + "\n" + json.dumps("plain") + "\n")
    assert sorted(json.loads(line)["document"] for line in jsonl.stdout.splitlines()) == ["plain", "two\nlines"]


@pytest.mark.parametrize("args, stdin, message", [
    (["q", "fine", "  "], None, "document 1 is empty"),
    (["q"], "", "documents is an empty list"),
    (["q", "--jsonl"], "{not json\n", "stdin line 1 is not JSON"),
    (["q", "--jsonl"], "3\n", "document 0 is a int"),
    (["q", "d", "--top-n", "0"], None, "top_n must be an integer of at least 1"),
])
def test_cli_rerank_errors(tiny_reranker_path, args, stdin, message):
    out = run("rerank", *args, "--reranker", str(tiny_reranker_path), input=stdin)
    assert out.exit_code == 1 and message in out.output, out.output


def test_cli_rerank_refuses_an_embedding_model(tiny_path):
    out = run("rerank", "q", "d", "--reranker", str(tiny_path))
    assert out.exit_code == 1 and "not a Qwen3-Reranker checkpoint" in out.output


def test_cli_search_shows_recall_and_rerank_scores(indexed, tiny_path, tiny_reranker_path):
    db = str(indexed.db_path)
    human = run("search", "login cookie", "--db", db, "--mode", "keyword", "--rerank", "-k", "2",
                "--reranker", str(tiny_reranker_path))
    assert human.exit_code == 0, human.output
    assert human.stdout.count("rerank ") == 2 and human.stdout.count("recall ") == 2
    as_json = run("search", "login cookie", "--db", db, "--mode", "keyword", "--rerank", "-k", "2", "--json",
                  "--candidates", "4", env={RERANKER_ENV: str(tiny_reranker_path)})
    hits = [json.loads(line) for line in as_json.stdout.splitlines()]
    expected = indexed.search("login cookie", k=2, mode="keyword", rerank=True, candidates=4)
    assert [h["chunk_id"] for h in hits] == [h.chunk_id for h in expected]
    assert all(h["rerank_score"] is not None and h["score"] is not None for h in hits)
    bad = run("search", "login", "--db", db, "--mode", "keyword", "--rerank", "-k", "5", "--candidates", "2",
              "--reranker", str(tiny_reranker_path))
    assert bad.exit_code == 1 and "candidates must be an integer from k=5" in bad.output
