"""The engines a user would pick instead of mlx-jina, which `mlx-jina bench --compare` times
against MLX on the same weights and inputs: their names, the packages each needs, and the
batching they share (sentence-transformers' defaults: length-sorted, right-padded batches of 32).

Light on purpose (numpy only): the CLI reads PEERS for its help; torch is imported only when a
peer is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING

import numpy as np

from mlx_jina.errors import InputError, MlxJinaError

if TYPE_CHECKING:
    from mlx_jina.bench.workloads import Workload
    from mlx_jina.embedder import Embedder

PEERS = {
    "torch": "transformers Qwen3Model + PEFT, all adapters unmerged (the model card's path)",
    "torch-merged": "Qwen3Model with the task's adapter merged in (the per-task repos, sentence-transformers)",
    "onnxruntime": "that merged model exported to ONNX, onnxruntime CPU (ONNX-based packages)",
}
MERGED = ("torch-merged", "onnxruntime")  # one adapter merged into the weights: single-adapter rows only
_TORCH = ("torch", "transformers", "peft")
PACKAGES = {"torch": _TORCH, "torch-merged": _TORCH, "onnxruntime": (*_TORCH, "onnx", "onnxruntime")}
INSTALL = "pip install 'mlx-jina[reference]' --extra-index-url https://download.pytorch.org/whl/cpu"
BATCH_SIZE = 32  # SentenceTransformer.encode's default
PAD_ID = 0  # padded positions are masked out, so any valid id works (the tiny test vocab has no 151643)

PeerRun = Callable[["Workload"], np.ndarray]


@dataclass(frozen=True)
class Peer:
    name: str
    run: PeerRun  # token ids -> raw last-token vectors, rows in input order
    adapter: str | None = None  # the one adapter a merged model serves; None: any mix of tasks

    def serves(self, adapters: set[str]) -> bool:
        """Whether this peer can embed a row whose texts need `adapters`."""
        return self.adapter is None or adapters == {self.adapter}


def parse_peers(text: str | None) -> list[str]:
    """Comma-separated peer names, deduplicated in order; unknown ones raise InputError."""
    names = list(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip()))
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise InputError(f"unknown peers {unknown}; choose from {list(PEERS)}")
    return names


def require_packages(names: list[str]) -> None:
    """A one-line error naming the install command when a requested peer's packages are missing."""
    missing = sorted({m for n in names for m in PACKAGES[n] if find_spec(m) is None})
    if missing:
        raise MlxJinaError(f"--compare {','.join(names)} needs {', '.join(missing)}, not installed: {INSTALL}")


def merged_adapter(embedder: Embedder, workloads: list[Workload]) -> str:
    """The adapter the merged peers are built for: the first single-adapter row's (every row but
    notes-mixed is retrieval), else the first adapter."""
    for w in workloads:
        adapters = {embedder.tasks[t].adapter for t in w.tasks}
        if len(adapters) == 1:
            return adapters.pop()
    return embedder.adapters[0]


def build_peers(embedder: Embedder, names: list[str], workloads: list[Workload]) -> list[Peer]:
    """The named peers on `embedder`'s weights (the merged ones share one merged torch model)."""
    require_packages(names)
    from mlx_jina.bench import torch_ref

    adapter = merged_adapter(embedder, workloads)
    merged = torch_ref.merged_model(embedder, adapter) if set(names) & set(MERGED) else None
    peers = []
    for name in names:
        if name == "torch":
            peers.append(Peer(name, torch_ref.unmerged_runner(embedder)))
        elif name == "torch-merged":
            peers.append(Peer(name, torch_ref.torch_runner(merged, embedder), adapter))
        else:
            from mlx_jina.bench.onnx_ref import onnx_runner

            peers.append(Peer(name, onnx_runner(merged, embedder.model.args.hidden_size), adapter))
    return peers


def padded_batches(workload: Workload, rows: Iterable[int]) -> Iterator[tuple[list[int], np.ndarray, np.ndarray,
                                                                              np.ndarray]]:
    """(row indices, ids [B, L] int64, attention mask [B, L] int64, lengths [B]) per batch of
    BATCH_SIZE rows, longest first, right-padded with PAD_ID."""
    ordered = sorted(rows, key=lambda r: -len(workload.ids[r]))
    for start in range(0, len(ordered), BATCH_SIZE):
        batch = ordered[start: start + BATCH_SIZE]
        lengths = np.array([len(workload.ids[r]) for r in batch], dtype=np.int64)
        ids = np.full((len(batch), int(lengths.max())), PAD_ID, dtype=np.int64)
        mask = np.zeros_like(ids)
        for j, r in enumerate(batch):
            ids[j, : lengths[j]] = workload.ids[r]
            mask[j, : lengths[j]] = 1
        yield batch, ids, mask, lengths
