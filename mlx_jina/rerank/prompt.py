"""The model card's prompt, as token ids: prefix + template(instruction, query, document) + suffix.

Exactly the card's `process_inputs`: the prefix and suffix are tokenized once (their special
tokens parsed, no added specials); the filled template is tokenized without added specials and,
when it does not fit, right-truncated to max_length minus the prefix and suffix, so the document's
end is cut and the suffix the answer depends on is always kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from mlx_jina.errors import InputTooLongError
from mlx_jina.spec import RerankerSpec


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    truncated: bool  # the document (and maybe more of the template) was cut to fit max_length


class PromptBuilder:
    """Token ids of whole prompts for one tokenizer and context limit."""

    def __init__(self, tokenizer: Tokenizer, spec: RerankerSpec, max_length: int):
        self.spec = spec
        self.tokenizer = tokenizer
        self.prefix_ids = tokenizer.encode(spec.prefix, add_special_tokens=False).ids
        self.suffix_ids = tokenizer.encode(spec.suffix, add_special_tokens=False).ids
        self.max_length = max_length
        self.body_limit = max_length - len(self.prefix_ids) - len(self.suffix_ids)

    def build(self, query: str, documents: Sequence[str], *, instruction: str | None = None,
              truncate: bool = True) -> list[Prompt]:
        """One prompt per document, in order. truncate=False: an over-length pair raises instead."""
        instruction = self.spec.default_instruction if instruction is None else instruction
        bodies = [self.spec.template.format(instruction=instruction, query=query, document=doc) for doc in documents]
        prompts = []
        for i, encoding in enumerate(self.tokenizer.encode_batch(bodies, add_special_tokens=False)):
            body = encoding.ids
            over = len(body) > self.body_limit
            if over and not truncate:
                frame = len(self.prefix_ids) + len(self.suffix_ids)
                raise InputTooLongError(
                    f"document {i}: query and document are {len(body)} tokens with the instruction; the reranker "
                    f"takes {self.body_limit} ({self.max_length} minus its {frame}-token prompt frame). "
                    "Pass truncate=True to cut the document's end, as the model card does.")
            prompts.append(Prompt(self.prefix_ids + body[: self.body_limit] + self.suffix_ids, over))
        return prompts


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all rows share, leaving every row at least one token of its own
    (its last position is where the score is read)."""
    shortest = min(len(r) for r in rows)
    first = rows[0]
    n = 0
    while n < shortest - 1 and all(r[n] == first[n] for r in rows):
        n += 1
    return n
