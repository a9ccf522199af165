"""`mlx-jina rerank QUERY [DOC...]`: score documents against a query with a Qwen3-Reranker and
print JSON lines, best first: {"index", "relevance_score", "document", "truncated"}. Documents
come from the arguments, or one per line on stdin (--jsonl: one JSON string or {"text": ...} per
line, for documents with newlines)."""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import click

from mlx_jina.cli import main
from mlx_jina.cli.options import load_reranker_from_options, reranker_options


def _stdin_documents(jsonl: bool) -> list[Any]:
    lines = [line.rstrip("\r\n") for line in sys.stdin]
    if not jsonl:
        return [line for line in lines if line.strip()]
    docs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise click.ClickException(f"stdin line {n} is not JSON ({exc}); drop --jsonl for plain lines") from None
        docs.append(item["text"] if isinstance(item, dict) and set(item) == {"text"} else item)
    return docs


@main.command()
@click.argument("query")
@click.argument("documents", nargs=-1)
@click.option("--top-n", type=int, default=None, help="Print only the best N (default: all).")
@click.option("--instruction", default=None, help="The reranker's task (default: the model card's web-search one).")
@click.option("--jsonl", is_flag=True, help="stdin holds one JSON string or {\"text\": ...} per line.")
@click.option("--no-truncate", is_flag=True, help="Fail on a pair over 8192 tokens instead of cutting it.")
@reranker_options
def rerank(query: str, documents: tuple[str, ...], top_n: int | None, instruction: str | None, jsonl: bool,
           no_truncate: bool, reranker: str, reranker_quantize: str | None) -> None:
    """Rerank DOCUMENTS (or stdin lines) for QUERY; JSON lines out, best first."""
    docs = list(documents) if documents else _stdin_documents(jsonl)
    model = load_reranker_from_options(reranker, reranker_quantize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation is reported per result
        results = model.rerank(query, docs, top_n=top_n, instruction=instruction, truncate=not no_truncate)
    for r in results:
        click.echo(json.dumps({"index": r.index, "relevance_score": r.score, "document": r.document,
                               "truncated": r.truncated}, ensure_ascii=False))
