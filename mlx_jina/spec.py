"""Package.toml as a typed, frozen spec: the only place repo ids, revisions, tasks, prompts,
Matryoshka dimensions, the context length, the LoRA targets and the reranker's prompt are defined."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType


@dataclass(frozen=True)
class TaskSpec:
    name: str  # Jina API task name, e.g. "retrieval.query"
    adapter: str  # adapter folder name, e.g. "retrieval"
    prompt: str  # prefix prepended to every text, e.g. "Query: "


@dataclass(frozen=True)
class RepoSpec:
    repo_id: str
    layout: str  # hf-adapters | mlx-adapters | hf-merged | mlx-merged | causal-lm (rerankers)
    revision: str  # "" = no verified pin known
    adapter: str | None = None  # the pre-merged adapter of a per-task repo


@dataclass(frozen=True)
class RerankerSpec:
    """The Qwen3-Reranker family: prompt pieces, scoring tokens and limits (Package.toml [reranker])."""

    default_model: str
    weights_license_note: str
    architecture: str  # config.json `architectures` entry every size declares
    max_length: int  # tokens of a whole prompt
    max_documents: int  # per call
    default_candidates: int  # knowledge-base hits recalled before reranking
    yes_token: str
    no_token: str
    default_instruction: str
    prefix: str
    template: str  # format() fields: instruction, query, document
    suffix: str
    repos: Mapping[str, RepoSpec]


@dataclass(frozen=True)
class PackageSpec:
    default_model: str
    weights_license_note: str
    max_length: int
    matryoshka_dimensions: tuple[int, ...]
    lora_targets: tuple[str, ...]  # projection names (mlx-lm / transformers module names)
    tasks: Mapping[str, TaskSpec]
    repos: Mapping[str, RepoSpec]
    reranker: RerankerSpec

    @property
    def adapters(self) -> tuple[str, ...]:
        """Adapter names in a stable order (first use in the task table)."""
        return tuple(dict.fromkeys(t.adapter for t in self.tasks.values()))


def _package_toml() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "Package.toml", here.parent / "Package.toml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("Package.toml not found next to mlx_jina/ or in its parent folder")


@cache
def package_spec() -> PackageSpec:
    data = tomllib.loads(_package_toml().read_text(encoding="utf-8"))
    pkg, model = data["package"], data["model"]
    return PackageSpec(
        default_model=pkg["default_model"],
        weights_license_note=pkg["weights_license_note"],
        max_length=model["max_length"],
        matryoshka_dimensions=tuple(model["matryoshka_dimensions"]),
        lora_targets=tuple(model["lora_targets"]),
        tasks=MappingProxyType({name: TaskSpec(name, t["adapter"], t["prompt"]) for name, t in data["tasks"].items()}),
        repos=MappingProxyType({
            rid: RepoSpec(rid, r["layout"], r.get("revision", ""), r.get("adapter"))
            for rid, r in data["repos"].items()
        }),
        reranker=_reranker_spec(data["reranker"]),
    )


def _reranker_spec(table: dict) -> RerankerSpec:
    fields = {k: v for k, v in table.items() if k != "repos"}
    repos = {rid: RepoSpec(rid, "causal-lm", r.get("revision", "")) for rid, r in table["repos"].items()}
    return RerankerSpec(**fields, repos=MappingProxyType(repos))
