"""Turning a model name into a local folder: a folder as is, or a hub id downloaded once with
huggingface_hub at the revision pinned in Package.toml, then served from the cache offline."""

from __future__ import annotations

import os
import re
import socket
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from mlx_jina.errors import ModelLoadError
from mlx_jina.spec import RepoSpec, package_spec

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# Never fetched: ONNX exports, GGUF files and (below) the weight files of the other precisions.
_IGNORE = ["onnx/*", "*.onnx", "*.onnx_data", "*.gguf", "*.bin", "*.pt", "*.h5", "*.msgpack"]


def resolve(name_or_path: str | Path, *, revision: str | None = None, quantize: int | None = None,
            repos: Mapping[str, RepoSpec] | None = None, licence_note: str | None = None,
            only: list[str] | None = None) -> tuple[Path, RepoSpec | None, str | None]:
    """Return (local folder, known repo spec or None, revision or None). repos / licence_note: the
    known repos and their licence (default: the embedding model's; the reranker passes its own).
    only: fetch just these files of a hub repo (e.g. the tokenizer, for a remote embedder)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; pass the checkpoint folder that holds config.json")
        return path, None, None
    name = str(name_or_path)
    if not _HUB_ID.match(name):
        raise ModelLoadError(f"{name!r} is neither an existing folder nor a hub id like 'owner/name'")
    if Path(name.split("/")[0]).is_dir():
        raise ModelLoadError(f"{name} does not exist (and {name.split('/')[0]}/ is a local folder, "
                             "so it is not a hub id)")
    spec = (package_spec().repos if repos is None else repos).get(name)
    if not (revision or (spec and spec.revision)):
        warnings.warn(f"{name}: no pinned revision is known (Package.toml); using the hub's 'main'", stacklevel=3)
    rev = hub_revision(name, revision, repos)
    ignore = _IGNORE + _other_precisions(quantize, spec)
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = huggingface_hub.snapshot_download(name, revision=rev, local_files_only=True, ignore_patterns=ignore,
                                                   allow_patterns=only)
        return Path(folder), spec, rev
    except LocalEntryNotFoundError:
        if huggingface_hub.constants.HF_HUB_OFFLINE:
            raise ModelLoadError(f"{name}@{rev} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. "
                                 "Download it once online, or pass a local checkpoint folder.") from None
    unreachable = _unreachable(huggingface_hub.constants.ENDPOINT)
    if unreachable:
        raise ModelLoadError(f"{name}@{rev} is not in the local Hugging Face cache and the hub is unreachable "
                             f"({unreachable}). Connect once, or pass a local checkpoint folder.")
    licence = f"\n{licence_note or package_spec().weights_license_note}" if spec else ""
    print(f"Downloading {name}@{rev} (once; later runs work offline from the Hugging Face cache).{licence}",
          file=sys.stderr)
    try:
        folder = huggingface_hub.snapshot_download(name, revision=rev, ignore_patterns=ignore, allow_patterns=only)
    except Exception as exc:  # network, auth, missing repo: all mean "not available here"
        raise ModelLoadError(
            f"{name}@{rev} is not in the local Hugging Face cache and could not be downloaded "
            f"({type(exc).__name__}: {exc}). Connect once, or pass a local checkpoint folder."
        ) from exc
    return Path(folder), spec, rev


def hub_revision(name: str, revision: str | None = None, repos: Mapping[str, RepoSpec] | None = None) -> str:
    """The revision `resolve` loads hub id `name` at: the one asked for, else the pinned one
    (Package.toml), else 'main'. Needs neither the cache nor the network."""
    spec = (package_spec().repos if repos is None else repos).get(name)
    return revision or (spec.revision if spec else "") or "main"


def _unreachable(endpoint: str, timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, found in seconds (huggingface_hub itself retries for ~25 s).
    None when it answers, or when a proxy is configured (then the download itself decides)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlsplit(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as exc:
        return f"{url.hostname}: {exc.strerror or exc}"
    return None


def _other_precisions(quantize: int | None, spec: RepoSpec | None) -> list[str]:
    """Per-task MLX repos ship float32, 8-bit and 4-bit weights: fetch only the one asked for.
    Elsewhere model.safetensors stays allowed (it is what gets quantized on load)."""
    files = {"model.safetensors", "model-8bit.safetensors", "model-4bit.safetensors"}
    if quantize and spec is not None and spec.layout == "mlx-merged":
        return sorted(files - {f"model-{quantize}bit.safetensors"})
    return sorted(files - {"model.safetensors"})
