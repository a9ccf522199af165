"""Model metadata from Package.toml: the only place repo ids, revisions, tasks, prompts,
Matryoshka dimensions and the context length are defined."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class TaskSpec:
    name: str  # Jina API task name, e.g. "retrieval.query"
    adapter: str  # adapter folder name, e.g. "retrieval"
    prompt: str  # prefix prepended to every text, e.g. "Query: "


@dataclass(frozen=True)
class RepoSpec:
    repo_id: str
    layout: str  # hf-adapters | mlx-adapters | hf-merged | mlx-merged
    revision: str  # "" = no verified pin known
    adapter: str | None = None  # the pre-merged adapter of a per-task repo


@dataclass(frozen=True)
class PackageInfo:
    default_model: str
    weights_license: str
    weights_license_note: str
    hidden_size: int
    max_length: int
    matryoshka_dimensions: tuple[int, ...]
    lora_targets: tuple[str, ...]
    tasks: dict[str, TaskSpec]
    repos: dict[str, RepoSpec]

    @property
    def adapters(self) -> tuple[str, ...]:
        """Adapter names in a stable order (first use in the task table)."""
        return tuple(dict.fromkeys(t.adapter for t in self.tasks.values()))

    def repo_for_name(self, name: str) -> RepoSpec | None:
        """The known repo whose last path component is `name` (e.g. a hub cache folder)."""
        for spec in self.repos.values():
            if spec.repo_id.split("/")[-1] == name:
                return spec
        return None


def _package_toml() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "Package.toml", here.parent / "Package.toml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("Package.toml not found next to mlx_jina/ or in its parent folder")


@cache
def package_info() -> PackageInfo:
    data = tomllib.loads(_package_toml().read_text(encoding="utf-8"))
    pkg, model = data["package"], data["model"]
    return PackageInfo(
        default_model=pkg["default_model"],
        weights_license=pkg["weights_license"],
        weights_license_note=pkg["weights_license_note"],
        hidden_size=model["hidden_size"],
        max_length=model["max_length"],
        matryoshka_dimensions=tuple(model["matryoshka_dimensions"]),
        lora_targets=tuple(model["lora_targets"]),
        tasks={name: TaskSpec(name, t["adapter"], t["prompt"]) for name, t in data["tasks"].items()},
        repos={
            rid: RepoSpec(rid, r["layout"], r.get("revision", ""), r.get("adapter"))
            for rid, r in data["repos"].items()
        },
    )
