"""`load_reranker()` a Qwen3-Reranker (0.6B / 4B / 8B, tied or untied lm_head), then `score` or
`rerank` documents for a query.

The body is the package's own Qwen3 decoder (`Qwen3Encoder`: final-normed hidden state at each
row's last token); the head is just the `no` and `yes` rows of the output projection, so a
score costs two dot products instead of a [vocab, hidden] matmul. score = P(yes) = softmax over
(logit_no, logit_yes), as the model card computes it.

Speed: the rows of one query share their first tokens (system prompt + instruction + query). That
shared prefix runs once, on one row, into a `PrefixCache`; every candidate then runs only its own
tokens, attending to the cached keys and values. Candidates are length-sorted into batches under
a token budget, like embeddings.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from tokenizers import Tokenizer

from mlx_jina.batching import pad_right, plan_batches
from mlx_jina.embedder import DEFAULT_BATCH_TOKENS
from mlx_jina.errors import InputError, ModelLoadError
from mlx_jina.info import RerankerInfo
from mlx_jina.model import hub
from mlx_jina.model.load import compute_dtype, load_base, read_config, read_tokenizer
from mlx_jina.model.qwen3 import PrefixCache, Qwen3Encoder
from mlx_jina.rerank.prompt import Prompt, PromptBuilder, shared_prefix_length
from mlx_jina.spec import RerankerSpec, package_spec

#: A shared prefix shorter than this is not worth its extra forward pass.
MIN_SHARED_PREFIX = 8


@dataclass(frozen=True)
class RerankResult:
    index: int  # position in the documents passed in
    score: float  # P(yes), 0..1
    document: str
    truncated: bool  # the pair was cut to the reranker's max_length (the card's truncation)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Reranker:
    """A loaded Qwen3-Reranker. Thread-affine like every MLX model: use it from one thread."""

    def __init__(self, body: Qwen3Encoder, head: mx.array, tokenizer: Tokenizer, *, model_id: str,
                 revision: str | None, folder: Path, dtype: mx.Dtype, quantization: int | None, weights_file: str,
                 max_length: int | None = None):
        spec = package_spec().reranker
        self.spec: RerankerSpec = spec
        self.model = body
        self.head = head  # [2, hidden]: rows of `no`, then `yes`
        self.tokenizer = tokenizer
        limit = min(spec.max_length, body.args.max_position_embeddings)
        self.max_length = limit if max_length is None else max_length
        self.prompts = PromptBuilder(tokenizer, spec, self.max_length)
        frame = len(self.prompts.prefix_ids) + len(self.prompts.suffix_ids)
        if isinstance(max_length, bool) or not isinstance(self.max_length, int) or not frame < self.max_length <= limit:
            raise ModelLoadError(f"max_length must be an integer from {frame + 1} (the prompt frame is {frame} tokens) "
                                 f"to {limit}, not {max_length!r}")
        self.model_id, self.revision, self.folder = model_id, revision, folder
        self._dtype, self._quantization, self._weights_file = dtype, quantization, weights_file

    @property
    def info(self) -> RerankerInfo:
        return RerankerInfo(model_id=self.model_id, revision=self.revision, folder=str(self.folder),
                            weights_file=self._weights_file, max_length=self.max_length,
                            max_documents=self.spec.max_documents, quantization=self._quantization,
                            dtype=str(self._dtype).removeprefix("mlx.core."), device=str(mx.default_device()))

    # ---- validation and prompts --------------------------------------------------------------
    def check_inputs(self, query: Any, documents: Any, *, instruction: Any = None, top_n: Any = None) -> None:
        """Every problem with the arguments, named, before any work."""
        if not isinstance(query, str):
            raise InputError(f"query must be a string, not {type(query).__name__}")
        if not query.strip():
            raise InputError("query is empty or whitespace only")
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise InputError(f"documents must be a list of strings, not {type(documents).__name__}")
        if not documents:
            raise InputError("documents is an empty list")
        if len(documents) > self.spec.max_documents:
            raise InputError(f"got {len(documents)} documents; the reranker takes at most "
                             f"{self.spec.max_documents} per call")
        for i, doc in enumerate(documents):
            if not isinstance(doc, str):
                raise InputError(f"document {i} is a {type(doc).__name__}, not a string")
            if not doc.strip():
                raise InputError(f"document {i} is empty or whitespace only")
        if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
            raise InputError(f"instruction must be a non-empty string or None, not {instruction!r}")
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise InputError(f"top_n must be an integer of at least 1 (or None for all), not {top_n!r}")

    def build_prompts(self, query: str, documents: Sequence[str], *, instruction: str | None = None,
                      truncate: bool = True) -> list[Prompt]:
        """Validated token ids of each (query, document) prompt; see mlx_jina.rerank.prompt."""
        self.check_inputs(query, documents, instruction=instruction)
        return self.prompts.build(query, documents, instruction=instruction, truncate=truncate)

    # ---- token ids -> scores -----------------------------------------------------------------
    def score_ids(self, rows: Sequence[Sequence[int]], groups: Sequence[Hashable] | None = None, *,
                  batch_tokens: int = DEFAULT_BATCH_TOKENS, prefix_cache: bool = True) -> np.ndarray:
        """P(yes) per prompt row, in input order. groups: a key per row (rows of one query share a
        key; default: all rows one group). prefix_cache=False runs every row in full (the naive
        path, for comparison)."""
        if not isinstance(batch_tokens, int) or isinstance(batch_tokens, bool) or batch_tokens < 1:
            raise InputError(f"batch_tokens must be a positive integer, not {batch_tokens!r}")
        keys = list(groups) if groups is not None else [0] * len(rows)
        members: dict[Hashable, list[int]] = {}
        for i, key in enumerate(keys):
            members.setdefault(key, []).append(i)
        out = np.empty(len(rows), dtype=np.float32)
        plain: list[int] = []
        for indices in members.values():
            shared = shared_prefix_length([rows[i] for i in indices]) if len(indices) > 1 else 0
            if not prefix_cache or shared < MIN_SHARED_PREFIX:
                plain += indices
                continue
            cache = self._prefix(rows[indices[0]][:shared])
            out[indices] = self._score_rows([rows[i][shared:] for i in indices], batch_tokens, cache)
        if plain:
            out[plain] = self._score_rows([rows[i] for i in plain], batch_tokens, None)
        return out

    def _prefix(self, ids: Sequence[int]) -> list[PrefixCache]:
        cache = [PrefixCache() for _ in self.model.layers]
        row = np.asarray(ids, dtype=np.int32)[None]  # rows may be lists or arrays (the server's batcher)
        self.model(mx.array(row), mx.array([row.shape[1]], dtype=mx.int32), None, cache)
        mx.eval([(c.keys, c.values) for c in cache])
        return cache

    def _score_rows(self, rows: list[Sequence[int]], batch_tokens: int, cache: list[PrefixCache] | None) -> np.ndarray:
        """Length-sorted, token-budgeted batches; each row continues `cache` when given."""
        out = np.empty(len(rows), dtype=np.float32)
        for batch in plan_batches([len(r) for r in rows], batch_tokens):
            padded, lengths = pad_right([rows[i] for i in batch])
            hidden = self.model(mx.array(padded), mx.array(lengths), None, cache)
            logits = (hidden @ self.head.T).astype(mx.float32)  # [B, 2]: no, yes
            out[batch] = np.array(mx.sigmoid(logits[:, 1] - logits[:, 0]))
        return out

    # ---- the public API ----------------------------------------------------------------------
    def score(self, query: str, documents: Sequence[str], *, instruction: str | None = None, truncate: bool = True,
              batch_tokens: int = DEFAULT_BATCH_TOKENS, prefix_cache: bool = True) -> np.ndarray:
        """P(yes) that each document meets the query (and instruction): float32 [N], input order.
        Over-length pairs are cut as the model card does (with a warning naming them);
        truncate=False raises InputTooLongError instead."""
        prompts = self.build_prompts(query, documents, instruction=instruction, truncate=truncate)
        _warn_truncated(prompts)
        return self.score_ids([p.ids for p in prompts], batch_tokens=batch_tokens, prefix_cache=prefix_cache)

    def rerank(self, query: str, documents: Sequence[str], *, top_n: int | None = None,
               instruction: str | None = None, truncate: bool = True,
               batch_tokens: int = DEFAULT_BATCH_TOKENS) -> list[RerankResult]:
        """The documents best first (the top_n best, or all), each with its input index and score."""
        self.check_inputs(query, documents, instruction=instruction, top_n=top_n)
        prompts = self.prompts.build(query, documents, instruction=instruction, truncate=truncate)
        _warn_truncated(prompts)
        scores = self.score_ids([p.ids for p in prompts], batch_tokens=batch_tokens)
        return ranked(scores, documents, [p.truncated for p in prompts], top_n)


def ranked(scores: np.ndarray, documents: Sequence[str], truncated: Sequence[bool],
           top_n: int | None) -> list[RerankResult]:
    """Results best first (ties keep input order), cut to top_n."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))[:top_n]
    return [RerankResult(i, float(scores[i]), documents[i], truncated[i]) for i in order]


def _warn_truncated(prompts: Sequence[Prompt]) -> None:
    cut = [i for i, p in enumerate(prompts) if p.truncated]
    if cut:
        warnings.warn(f"documents {cut} were cut to the reranker's {len(prompts[cut[0]].ids)}-token limit "
                      "(the model card's truncation); pass truncate=False to get an error instead", stacklevel=3)


def load_reranker(path_or_repo: str | Path | None = None, *, quantize: int | None = None, dtype: str | None = None,
                  revision: str | None = None, max_length: int | None = None) -> Reranker:
    """Load a Qwen3-Reranker: a hub id (default Qwen/Qwen3-Reranker-0.6B, downloaded once at the
    revision pinned in Package.toml) or a local folder in the transformers layout (config.json
    with architectures ["Qwen3ForCausalLM"], model.safetensors or shards, tokenizer.json).
    quantize: 8 or 4 quantizes the body; the yes/no head rows stay in `dtype`. max_length: tokens
    per prompt (default and most: Package.toml's 8192, the card's); lower bounds the cost per pair."""
    spec = package_spec().reranker
    name = str(path_or_repo or spec.default_model)
    folder, _, rev = hub.resolve(name, revision=revision, quantize=quantize, repos=spec.repos,
                                 licence_note=spec.weights_license_note)
    mx_dtype = compute_dtype(dtype)
    _check_causal_lm(folder, spec)
    tokenizer = read_tokenizer(folder)
    token_ids = [_token_id(tokenizer, token, folder) for token in (spec.no_token, spec.yes_token)]
    base = load_base(folder, quantize=quantize, dtype=mx_dtype, head_rows=token_ids)
    assert base.head is not None
    mx.eval(base.model.parameters(), base.head)
    return Reranker(base.model, base.head, tokenizer, model_id=name, revision=rev, folder=folder, dtype=mx_dtype,
                    quantization=base.quantization, weights_file=base.weights_file, max_length=max_length)


def _token_id(tokenizer: Tokenizer, token: str, folder: Path) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ModelLoadError(f"{folder}/tokenizer.json has no {token!r} token: not a Qwen3-Reranker tokenizer")
    return token_id


def _check_causal_lm(folder: Path, spec: RerankerSpec) -> None:
    """Refuse folders that are not a Qwen3 causal LM before reading any weights: an embedding
    model would load as a body and then score with a meaningless head."""
    config, _ = read_config(folder)
    architectures = config.get("architectures") or []
    if spec.architecture not in architectures:
        raise ModelLoadError(
            f"{folder}/config.json declares architectures {architectures or None}, not [{spec.architecture!r}]: "
            "not a Qwen3-Reranker checkpoint (an embedding model such as jina-embeddings-v5 loads with mlx_jina.load)")
