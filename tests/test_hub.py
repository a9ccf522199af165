"""Hub ids resolve through the Hugging Face cache at the pinned revision, offline (no network here:
the cache is laid out by the test exactly as huggingface_hub writes it)."""

from __future__ import annotations

import shutil

import huggingface_hub
import pytest
from conftest import TINY
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError

import mlx_jina
from mlx_jina.errors import ModelLoadError
from mlx_jina.spec import package_spec


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path


def cache_repo(cache, repo_id: str, revision: str, source) -> None:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(source, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def test_default_repo_loads_from_cache_at_pinned_revision(hub_cache):
    repo = package_spec().default_model
    pin = package_spec().repos[repo].revision
    cache_repo(hub_cache, repo, pin, TINY / "jina-v5-tiny")
    model = mlx_jina.load(repo)
    assert model.info.revision == pin and model.info.layout == "hf-adapters"
    assert model.encode(["offline"], task="retrieval.query").shape == (1, 128)


def test_per_task_repo_takes_its_task_from_package_toml(hub_cache):
    repo = "jinaai/jina-embeddings-v5-text-small-retrieval"
    cache_repo(hub_cache, repo, package_spec().repos[repo].revision, TINY / "jina-v5-tiny-retrieval")
    model = mlx_jina.load(repo)
    assert model.info.merged_adapter == "retrieval"
    assert set(model.tasks) == {"retrieval.query", "retrieval.passage"}


def test_unpinned_repo_warns_and_uses_main(hub_cache):
    repo = "jinaai/jina-embeddings-v5-text-small-clustering-mlx"
    cache_repo(hub_cache, repo, "0" * 40, TINY / "jina-v5-tiny-retrieval-mlx")
    with pytest.warns(UserWarning, match="no pinned revision"):
        model = mlx_jina.load(repo)
    assert model.info.merged_adapter == "clustering" and model.info.revision == "main"


def test_uncached_repo_offline_is_a_clear_error(hub_cache, capsys):
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        mlx_jina.load(package_spec().default_model)
    assert "Downloading" not in capsys.readouterr().err


def test_first_download_shows_the_licence_and_fetches_only_what_is_needed(hub_cache, monkeypatch, capsys):
    """The network is simulated: the second snapshot_download call is where a real download happens."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    repo = "jinaai/jina-embeddings-v5-text-small-retrieval-mlx"
    calls = []

    def fake_snapshot_download(repo_id, *, revision, ignore_patterns, local_files_only=False, allow_patterns=None):
        calls.append((local_files_only, ignore_patterns))
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        return str(TINY / "jina-v5-tiny-retrieval-mlx")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr("mlx_jina.model.hub._unreachable", lambda endpoint: None)
    with pytest.warns(UserWarning, match="no pinned revision"):
        model = mlx_jina.load(repo, quantize=4)
    assert "CC BY-NC 4.0" in capsys.readouterr().err
    assert [c[0] for c in calls] == [True, False]
    ignored = calls[-1][1]
    assert "model.safetensors" in ignored and "model-8bit.safetensors" in ignored  # only the 4-bit file is fetched
    assert "model-4bit.safetensors" not in ignored and "onnx/*" in ignored
    assert model.info.weights_file == "model-4bit.safetensors"


def test_network_failure_is_a_clear_error(hub_cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def failing(repo_id, *, local_files_only=False, **kwargs):
        raise LocalEntryNotFoundError("not cached") if local_files_only else OSError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    monkeypatch.setattr("mlx_jina.model.hub._unreachable", lambda endpoint: None)
    with pytest.raises(ModelLoadError, match="could not be downloaded.*Name or service not known"):
        mlx_jina.load(package_spec().default_model)


def test_unreachable_hub_fails_fast(hub_cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")  # .invalid never resolves (RFC 2606)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with pytest.raises(ModelLoadError, match=r"hub is unreachable \(hub.invalid: "):
        mlx_jina.load(package_spec().default_model)
