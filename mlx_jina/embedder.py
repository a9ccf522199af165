"""The user-facing embedder: `load()` a checkpoint, then `encode()` texts like sentence-transformers.

Results depend only on the call: `encode` keeps no state between calls except what the caller
asked for explicitly with `fuse()` (a fused single-adapter copy, freed by `unfuse()`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from tokenizers import Tokenizer

from mlx_jina.batching import ADAPTER_MODES, AdapterMode, pad_right, plan_batches
from mlx_jina.errors import InputError, InputTooLongError, ModelLoadError
from mlx_jina.info import ModelInfo
from mlx_jina.model import hub
from mlx_jina.model.load import LoadedCheckpoint, compute_dtype, load_checkpoint, read_tokenizer, token_counts
from mlx_jina.model.lora import AdapterChoice, merged_copy
from mlx_jina.model.qwen3 import Qwen3Encoder
from mlx_jina.postprocess import check_embedding_type, finalize
from mlx_jina.spec import TaskSpec, package_spec
from mlx_jina.unicode import check_unicode

DEFAULT_BATCH_TOKENS = 8192
#: Texts longer than max_length x this many characters are cut before tokenizing (see tokenize);
#: few texts average more than 8 characters per token. The cut must end at least
#: CUT_MARGIN_CHARS past the last kept token (far more than the longest token, 128 characters).
CUT_CHARS_PER_TOKEN = 8
CUT_MARGIN_CHARS = 1024


def _bundled(name: str) -> Path:
    """Bundled tiny checkpoints: inside the installed package, or weights/tiny in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "weights" / name, here.parent / "weights" / "tiny" / name):
        if candidate.is_dir():
            return candidate
    return here.parent / "weights" / "tiny" / name


#: A tiny random checkpoint in the main repo's layout: for tests and demos, not semantically meaningful.
TINY_CHECKPOINT = _bundled("jina-v5-tiny")


class Embedder:
    """A loaded model: all task adapters resident, any mix of tasks per call."""

    def __init__(self, loaded: LoadedCheckpoint, tokenizer: Tokenizer, *, model_id: str,
                 revision: str | None, folder: Path, dtype: mx.Dtype):
        self.model = loaded.model
        self.tokenizer = tokenizer
        self.folder = folder
        self._fused: tuple[str, Qwen3Encoder] | None = None  # (adapter, encoder) made by fuse()
        self.adapters: tuple[str, ...] = loaded.adapters  # resident adapters in bank order (empty if merged)
        self._adapter_ids = {name: i for i, name in enumerate(loaded.adapters)}
        pkg = package_spec()
        usable = loaded.adapters or (loaded.merged_adapter,)
        self.tasks: dict[str, TaskSpec] = {n: t for n, t in pkg.tasks.items() if t.adapter in usable}
        hidden = loaded.model.args.hidden_size
        self.dimensions: tuple[int, ...] = tuple(d for d in pkg.matryoshka_dimensions if d < hidden) + (hidden,)
        self.max_length = min(pkg.max_length, loaded.model.args.max_position_embeddings)
        self.model_id = model_id
        self.revision = revision
        self.info = ModelInfo(
            model_id=model_id, revision=revision, folder=str(folder), layout=loaded.layout,
            weights_file=loaded.weights_file, adapters=loaded.adapters, merged_adapter=loaded.merged_adapter,
            dimensions=hidden, matryoshka_dimensions=self.dimensions, max_length=self.max_length,
            quantization=loaded.quantization, dtype=str(dtype).removeprefix("mlx.core."), tasks=tuple(self.tasks),
            device=str(mx.default_device()))

    # ---- explicit fusing ---------------------------------------------------------------------
    @property
    def fused(self) -> str | None:
        """The adapter of the fused copy made by `fuse()`, or None."""
        return self._fused[0] if self._fused else None

    def fuse(self, task: str) -> None:
        """Keep a copy of the encoder with `task`'s adapter merged into the weights (W + s·BA), so
        later calls for that adapter run plain matmuls with no LoRA term. Costs a second copy of
        every projection (~1.8 GB in float32 for the real model) until `unfuse()`; replaces any
        previous fused copy. `task` is a task ("retrieval.query") or adapter ("retrieval") name.
        Needs a float base. On a merged checkpoint its own task is already fused: a no-op."""
        adapter = self._adapter_of(task)
        if not self._adapter_ids or self.fused == adapter:
            return
        self.unfuse()  # free the previous copy before building the next
        self._fused = (adapter, self._fused_copy(adapter))

    def unfuse(self) -> None:
        """Free the fused copy (if any); every call runs the shared model with its adapters again."""
        self._fused = None
        mx.clear_cache()

    def _adapter_of(self, task: str) -> str:
        if task in self.tasks:
            return self.tasks[task].adapter
        if task in self._adapter_ids:
            return task
        raise InputError(f"fuse({task!r}): not a task of this checkpoint: {list(self.tasks)}")

    def _fused_copy(self, adapter: str) -> Qwen3Encoder:
        if self.info.quantization is not None:
            raise InputError("fusing an adapter needs a float base; this one is quantized "
                             "(use adapter_mode 'shared' or 'per-row')")
        return merged_copy(self.model, self._adapter_ids[adapter])

    # ---- text -> token ids -------------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts of raw texts, without any task prefix."""
        return token_counts(self.tokenizer, texts)

    def tokenize(self, texts: Sequence[str], tasks: Sequence[str], *, truncate: bool = False) -> list[list[int]]:
        """Prefix each text with its task's prompt and tokenize (no EOS, as the reference).
        Over-length input raises unless truncate=True, which right-truncates after the prefix.

        A text far beyond the limit is cut by characters first (the cut grows until it surely
        keeps the first max_length tokens), so a 15 MB text costs about what a long one does."""
        prompts = [self.tasks[t].prompt for t in tasks]
        ids: list[list[int]] = [[] for _ in texts]
        cut_texts: set[int] = set()
        todo, cut = list(range(len(texts))), self.max_length * CUT_CHARS_PER_TOKEN
        while todo:
            whole = [i for i in todo if len(texts[i]) <= cut]
            if whole:  # the fast call skips the offsets: only a cut text's check reads them
                for i, e in zip(whole, self.tokenizer.encode_batch_fast([prompts[i] + texts[i] for i in whole],
                                                                        add_special_tokens=True)):
                    ids[i] = e.ids
            cuts = [i for i in todo if len(texts[i]) > cut]
            again = []
            if cuts:
                for i, e in zip(cuts, self.tokenizer.encode_batch([prompts[i] + texts[i][:cut] for i in cuts],
                                                                  add_special_tokens=True)):
                    if self._keeps_limit(e.offsets, len(prompts[i]) + cut):
                        ids[i] = e.ids
                        cut_texts.add(i)
                    else:
                        again.append(i)
            todo, cut = again, cut * 4
        for i, row in enumerate(ids):
            if len(row) > self.max_length:
                if not truncate:
                    size = f"more than {self.max_length}" if i in cut_texts else str(len(row))
                    raise InputTooLongError(
                        f"text {i} is {size} tokens long (with its {prompts[i]!r} prefix); the model's limit "
                        f"is {self.max_length}. Pass truncate=True to cut it to the first {self.max_length} tokens."
                    )
                ids[i] = row[: self.max_length]
        return ids

    def _keeps_limit(self, offsets: list[tuple[int, int]], cut: int) -> bool:
        """Whether a text cut at `cut` characters tokenized to the same first max_length (+1)
        tokens as the whole text: token max_length starts well before the cut, so the piece the
        cut fell into cannot reach back over it."""
        return len(offsets) > self.max_length and offsets[self.max_length][0] + CUT_MARGIN_CHARS < cut

    # ---- token ids -> raw pooled vectors -----------------------------------------------------
    def embed_ids(self, ids: Sequence[Sequence[int]], tasks: Sequence[str], *,
                  batch_tokens: int = DEFAULT_BATCH_TOKENS, adapter_mode: AdapterMode = "auto") -> np.ndarray:
        """Forward passes over length-sorted, token-budgeted batches; rows come back in input
        order as raw (unsliced, unnormalised) float32 vectors.

        adapter_mode: "per-row" gathers each row's LoRA pair (any task mix in one pass);
        "shared" applies one unmerged adapter to a single-task batch with plain matmuls;
        "merged" runs on fused weights (single task, float base): the copy made by `fuse()` if it
        is this adapter's, else one fused for this call and freed after it;
        "auto" uses the `fuse()` copy for calls that need only its adapter, else shared or
        per-row per batch. Only "merged" ever builds a fused copy, and only for its own call."""
        if adapter_mode not in ADAPTER_MODES:
            raise InputError(f"adapter_mode {adapter_mode!r} is not one of {list(ADAPTER_MODES)}")
        adapters = [self.tasks[t].adapter for t in tasks]
        if adapter_mode in ("shared", "merged") and len(set(adapters)) > 1:
            raise InputError(f"adapter_mode={adapter_mode!r} needs a single task; use 'auto' for mixed tasks")
        model = self._model_for(adapters, adapter_mode)
        out = np.empty((len(ids), self.dimensions[-1]), dtype=np.float32)
        for batch in plan_batches([len(r) for r in ids], batch_tokens):
            padded, lengths = pad_right([ids[i] for i in batch])
            choice = None if model is not self.model else self._adapter_choice([adapters[i] for i in batch],
                                                                                 adapter_mode)
            pooled = model(mx.array(padded), mx.array(lengths), choice)
            out[batch] = np.array(pooled.astype(mx.float32))
        if model is not self.model and (self._fused is None or model is not self._fused[1]):
            del model  # the transient fused copy of adapter_mode="merged": give its memory back now
            mx.clear_cache()
        return out

    def _model_for(self, adapters: list[str], mode: AdapterMode) -> Qwen3Encoder:
        """The fused copy when it serves this call, a transient one for "merged", else the shared
        model with its LoRA banks."""
        if not self._adapter_ids or not adapters or mode in ("shared", "per-row"):
            return self.model
        single = adapters[0] if len(set(adapters)) == 1 else None
        if self._fused is not None and single == self._fused[0]:
            return self._fused[1]
        if mode == "merged" and single is not None:
            return self._fused_copy(single)  # dropped when the call returns
        return self.model

    def _adapter_choice(self, adapters: list[str], mode: AdapterMode) -> AdapterChoice:
        if not self._adapter_ids:  # merged checkpoint: the task is in the weights
            return None
        if mode != "per-row" and len(set(adapters)) == 1:
            return self._adapter_ids[adapters[0]]
        return mx.array([self._adapter_ids[a] for a in adapters], dtype=mx.int32)

    # ---- the public API ----------------------------------------------------------------------
    def encode(
        self,
        texts: str | Sequence[str],
        *,
        task: str | Sequence[str],
        dimensions: int | None = None,
        embedding_type: str = "float",
        normalized: bool = True,
        truncate: bool = False,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        adapter_mode: AdapterMode = "auto",
        ids: Sequence[Sequence[int]] | None = None,
    ) -> np.ndarray:
        """Embed texts -> [N, dimensions] (a single string -> [dimensions]).

        task: one Jina API task name for all texts, or a list with one per text (one forward pass
        may mix them). dimensions: a Matryoshka size (slice, then normalise). embedding_type:
        float | float16 | int8 | binary | ubinary | base64 (see mlx_jina.postprocess). ids: the
        texts' `tokenize(texts, tasks, truncate=truncate)`, when the caller made them already (the
        indexer counts each chunk that way): used instead of tokenizing again."""
        single = isinstance(texts, str)
        batch: Sequence[str] = [texts] if isinstance(texts, str) else texts
        tasks = self.check_inputs(batch, task, dimensions=dimensions, embedding_type=embedding_type,
                                  batch_tokens=batch_tokens, normalized=normalized, truncate=truncate)
        if ids is not None and len(ids) != len(batch):
            raise InputError(f"got {len(ids)} token id rows for {len(batch)} texts")
        rows = self.tokenize(batch, tasks, truncate=truncate) if ids is None else ids
        raw = self.embed_ids(rows, tasks, batch_tokens=batch_tokens, adapter_mode=adapter_mode)
        result = finalize(raw, dimensions=dimensions, normalized=normalized, embedding_type=embedding_type)
        return result[0] if single else result

    def check_inputs(self, texts: Any, task: Any, *, dimensions: Any = None, embedding_type: str = "float",
                     batch_tokens: Any = DEFAULT_BATCH_TOKENS, normalized: Any = True,
                     truncate: Any = False) -> list[str]:
        """Validate everything before any work (types too: truncate='no' must not mean True);
        return one task name per text."""
        if not isinstance(texts, Sequence) or isinstance(texts, bytes):
            raise InputError(f"texts must be a string or a list of strings, not {type(texts).__name__}")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"text {i} is a {type(text).__name__}, not a string")
            if not text.strip():
                raise InputError(f"text {i} is empty or whitespace only")
            check_unicode(text, f"text {i}")
        if isinstance(task, str):
            tasks = [task] * len(texts)
        elif isinstance(task, Sequence) and all(isinstance(t, str) for t in task):
            tasks = list(task)
        else:
            raise InputError(f"task must be a task name or a list of them (one per text), not {task!r:.80}")
        if len(tasks) != len(texts):
            raise InputError(f"got {len(tasks)} tasks for {len(texts)} texts; pass one task or one per text")
        for t in set(tasks):
            if t not in self.tasks:
                known = f"one of {list(self.tasks)}" if t in package_spec().tasks else f"a task: {list(self.tasks)}"
                why = "is not available in this merged checkpoint" if t in package_spec().tasks else "is not"
                raise InputError(f"task {t!r} {why} {known}")
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)
                                       or dimensions not in self.dimensions):
            sizes = list(self.dimensions)
            raise InputError(f"dimensions={dimensions!r} is not a Matryoshka size of this model: {sizes}")
        check_embedding_type(embedding_type)
        if isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int) or batch_tokens < 1:
            raise InputError(f"batch_tokens must be a positive integer, not {batch_tokens!r}")
        for name, flag in (("normalized", normalized), ("truncate", truncate)):
            if not isinstance(flag, bool):
                raise InputError(f"{name} must be True or False, not {flag!r}")
        return tasks


def load(
    path_or_repo: str | Path | None = None,
    *,
    quantize: int | None = None,
    dtype: str | None = None,
    revision: str | None = None,
    adapter: str | None = None,
) -> Embedder:
    """Load jina-embeddings-v5-text-small (default) or any published layout of it.

    path_or_repo: a local folder or a hub id (downloaded once at the revision pinned in
    Package.toml, then used offline from the cache). quantize: 8 or 4 quantizes the base (or
    picks a per-task repo's pre-quantized file); adapters stay unmerged in `dtype`. dtype:
    float32 (CPU default), float16 or bfloat16 (GPU default). adapter: the task of a per-task
    merged folder whose name does not say it."""
    name = str(path_or_repo or package_spec().default_model)
    if adapter is not None and adapter not in package_spec().adapters:
        raise ModelLoadError(f"adapter {adapter!r} is not one of {list(package_spec().adapters)}")
    folder, spec, rev = hub.resolve(name, revision=revision, quantize=quantize)
    mx_dtype = compute_dtype(dtype)
    loaded = load_checkpoint(folder, quantize=quantize, dtype=mx_dtype,
                             merged_adapter=adapter or (spec.adapter if spec else None))
    return Embedder(loaded, read_tokenizer(folder), model_id=name, revision=rev, folder=folder, dtype=mx_dtype)
