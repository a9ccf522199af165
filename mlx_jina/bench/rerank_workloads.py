"""The reranker's benchmark rows: one query against N candidates of about T tokens, as the card's
prompts (token ids), from real text.

Each candidate is a run of the same stdlib docstring stream the encoder rows use (bench/workloads.py),
decoded back to text that tokenizes to exactly T tokens; the prompts are then built as a user's call
builds them (Reranker.build_prompts: the card's template and tokenization), so a candidate's own
part is T tokens, give or take the one where its first word merges with the template's space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from mlx_jina.bench.workloads import docstrings
from mlx_jina.rerank import Reranker

QUERY = "How do I run a command in a subprocess and capture its output?"
#: row name -> (candidates, tokens per candidate), in table order
RERANK_ROWS: dict[str, tuple[int, int]] = {
    f"rerank-{n}x{t}": (n, t) for t in (200, 800) for n in (10, 40)
}


@dataclass(frozen=True)
class RerankWorkload:
    name: str
    description: str
    rows: list[list[int]]  # one whole prompt (prefix, instruction, query, candidate, suffix) per candidate

    @property
    def candidates(self) -> int:
        return len(self.rows)

    @property
    def tokens(self) -> int:
        return sum(len(row) for row in self.rows)


def split_rows(names: Sequence[str] | None) -> tuple[list[str] | None, list[str]]:
    """(encoder row names, rerank row names) of a --rows list; None means every row of both."""
    if names is None:
        return None, list(RERANK_ROWS)
    return [n for n in names if n not in RERANK_ROWS], [n for n in RERANK_ROWS if n in names]


def build_rerank_workloads(reranker: Reranker, names: Sequence[str]) -> list[RerankWorkload]:
    """The named rows (names from RERANK_ROWS), in table order."""
    tokenizer = reranker.tokenizer
    stream = [i for e in tokenizer.encode_batch(docstrings(), add_special_tokens=False) for i in e.ids]
    out = []
    for name, (count, length) in RERANK_ROWS.items():
        if name not in names:
            continue
        documents = [exact_text(tokenizer, stream, (i * length) % (len(stream) - 2 * length), length)
                     for i in range(count)]
        prompts = reranker.build_prompts(QUERY, documents)
        out.append(RerankWorkload(name, f"1 query x {count} candidates of ~{length} tok",
                                  [p.ids for p in prompts]))
    return out


def exact_text(tokenizer: Tokenizer, stream: list[int], start: int, length: int) -> str:
    """Text from stream[start:] that tokenizes to `length` tokens. Decoding a cut is not enough:
    where two docstrings meet, the joined text merges into fewer tokens, so the cut is lengthened
    until it comes out exact (or as close as a few tries get)."""
    take = length
    for _ in range(8):
        text = tokenizer.decode(stream[start: start + take])
        got = len(tokenizer.encode(text, add_special_tokens=False).ids)
        if got == length:
            break
        take += length - got
    return text
