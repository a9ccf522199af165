"""benchmarks/search_quality.py: its metrics, its query set, and a run through keyword search and
the rerank stage on the bundled notes (tiny models: the plumbing; the keyword side is real)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import search_quality as sq
from mlx_jina import KnowledgeBase
from mlx_jina.kb.search import Hit


def hit(rel: str) -> Hit:
    return Hit(path=rel, rel=rel, kind="markdown", heading="", start_line=1, end_line=1, snippet="",
               score=0.0, vector_score=None, keyword_score=None, chunk_id=0)


def test_metrics_count_files_not_chunks():
    files = sq.ranked_files([hit("a"), hit("a"), hit("b"), hit("c")])
    assert files == ["a", "b", "c"]
    assert sq.recall_at(files, {"b", "z"}, 1) == 0.0
    assert sq.recall_at(files, {"b", "z"}, 2) == 0.5
    assert sq.reciprocal_rank(files, {"c"}) == 1 / 3
    assert sq.reciprocal_rank(files, {"z"}) == 0.0


def test_every_query_names_bundled_notes_that_exist():
    queries = sq.load_queries()
    assert len(queries) >= 20
    assert all(q["query"].strip() and q["relevant"] for q in queries)


def test_keyword_search_finds_the_answering_note_and_the_rerank_row_runs(tmp_path: Path, tiny, tiny_reranker):
    queries = sq.load_queries()
    with KnowledgeBase(tmp_path / "kb.db", model=tiny, reranker=tiny_reranker) as kb:
        kb.index(sq.NOTES)
        scores = sq.evaluate(kb, queries[:4], candidates=sq.DEPTH, methods=("keyword", "hybrid + rerank"))
    assert scores["keyword"].recall_at_3 >= 0.8  # BM25 on real queries: a quality floor, not plumbing
    reranked = scores["hybrid + rerank"]
    assert 0.0 <= reranked.mrr <= 1.0 and reranked.ms_per_query > 0
