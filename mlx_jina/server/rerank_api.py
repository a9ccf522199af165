"""POST /v1/rerank in the Jina / Cohere shape (what Open WebUI and qmd send).

Request: {"model"?, "query": str, "documents": [str | {"text": str}], "top_n"?: int,
"return_documents"?: bool (default true), "instruction"?: str, "truncate"?: bool (default true:
the model card's cut of over-length pairs)}. Response, best first:
{"model", "results": [{"index", "relevance_score", "document": {"text"}, "truncated"?: true}],
"usage": {"total_tokens"}}. Values are checked by the same `Reranker.check_inputs` as `rerank`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlx_jina.errors import InputError
from mlx_jina.server.requests import check_model, optional_field

if TYPE_CHECKING:
    from mlx_jina.rerank import Reranker


@dataclass(frozen=True)
class RerankJob:
    query: str
    documents: list[str]
    top_n: int | None
    return_documents: bool
    instruction: str | None
    truncate: bool


def _document(i: int, item: Any) -> Any:
    if isinstance(item, dict):
        if set(item) != {"text"}:
            raise InputError(f"document {i}: an object must be {{\"text\": ...}}, not {item!r:.80}")
        return item["text"]
    return item  # a string, or something check_inputs names


def parse_rerank(body: Any, reranker: Reranker, *, names: Sequence[str], max_documents: int) -> RerankJob:
    """Validate a decoded JSON body; InputError (ModelNotFound for `model`) naming the problem."""
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, not {type(body).__name__}")
    check_model(body.get("model"), names)
    documents = body.get("documents")
    if not isinstance(documents, list):
        raise InputError("documents is required: a list of strings or {\"text\": ...} objects")
    if len(documents) > max_documents:
        raise InputError(f"documents has {len(documents)} items; this server takes at most {max_documents}")
    docs = [_document(i, item) for i, item in enumerate(documents)]
    query, top_n, instruction = body.get("query"), body.get("top_n"), body.get("instruction")
    reranker.check_inputs(query, docs, instruction=instruction, top_n=top_n)
    return RerankJob(str(query), docs, top_n, optional_field(body, "return_documents", bool, True), instruction,
                     optional_field(body, "truncate", bool, True))


def rerank_body(job: RerankJob, scores: np.ndarray, truncated: Sequence[bool], *, model_name: str,
                total_tokens: int) -> dict[str, Any]:
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))[: job.top_n]
    results = []
    for i in order:
        result: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        if job.return_documents:
            result["document"] = {"text": job.documents[i]}
        if truncated[i]:
            result["truncated"] = True
        results.append(result)
    return {"model": model_name, "results": results, "usage": {"total_tokens": total_tokens}}
