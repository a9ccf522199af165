"""The second search stage: a Qwen3-Reranker reads the query with each recalled chunk (the text
that was embedded: context header + body) and reorders them. Recall casts the wider net
(`candidates` hits); the reranker picks the k best. Each hit keeps its recall score and gets
`rerank_score` (P(yes), 0..1)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from mlx_jina.errors import InputError
from mlx_jina.kb.search import Hit
from mlx_jina.kb.store import Store

if TYPE_CHECKING:
    from mlx_jina.rerank import Reranker


def check_candidates(candidates: Any, k: int, limit: int) -> None:
    if isinstance(candidates, bool) or not isinstance(candidates, int) or not k <= candidates <= limit:
        raise InputError(f"candidates must be an integer from k={k} to {limit} (the reranker's limit), "
                         f"not {candidates!r}")


def rerank_hits(store: Store, reranker: Reranker, query: str, hits: list[Hit], *, k: int,
                instruction: str | None = None) -> list[Hit]:
    """The k best of `hits` by the reranker, best first, with rerank_score set."""
    if not hits:
        return []
    ids = ",".join(str(int(h.chunk_id)) for h in hits)
    with store.snapshot() as conn:
        rows = dict(conn.execute(f"SELECT id, header || body FROM chunks WHERE id IN ({ids})").fetchall())
    present = [h for h in hits if h.chunk_id in rows]  # a file re-indexed meanwhile drops its old chunks
    if not present:
        return []
    results = reranker.rerank(query, [rows[h.chunk_id] for h in present], top_n=k, instruction=instruction)
    return [dataclasses.replace(present[r.index], rerank_score=r.score) for r in results]
