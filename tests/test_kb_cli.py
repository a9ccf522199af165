"""`mlx-jina index | add | remove | search | status | doctor` through click, on real files in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_jina.cli import main
from mlx_jina.kb import default_db_path


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    (root / "work").mkdir(parents=True)
    (root / "work" / "login.md").write_text("# Login\n\n## The fix\n\nWe fixed the login bug by renewing the cookie.\n")
    (root / "home.txt").write_text("Groceries: quinoa, lentils, oat milk.\n")
    (root / "bin.txt").write_bytes(b"\x00\x01")
    return root


def run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(main, list(args), env=env)
    return result


def test_index_search_status_roundtrip(notes, tmp_path, tiny_path):
    db = str(tmp_path / "kb.db")
    first = run("index", str(notes), "--db", db, "--model", str(tiny_path), "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert {k: report[k] for k in ("seen", "added", "changed", "removed", "skipped_count")} == \
        {"seen": 2, "added": 2, "changed": 0, "removed": 0, "skipped_count": 1}
    assert report["chunks_embedded"] >= 2 and report["skipped"] == [{"path": "bin.txt", "reason": "binary file"}]
    again = json.loads(run("index", str(notes), "--db", db, "--model", str(tiny_path), "--json").stdout)
    assert (again["unchanged"], again["chunks_embedded"]) == (2, 0)

    text = run("index", str(notes), "--db", db, "--model", str(tiny_path))
    assert "2 unchanged" in text.stdout and "skipped bin.txt: binary file" in text.stderr

    found = run("search", "login cookie", "--db", db, "--model", str(tiny_path), "--json", "-k", "5")
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert hits[0]["rel"] == "work/login.md" and hits[0]["path"] == str(notes / "work" / "login.md")
    assert {"path", "start_line", "end_line", "heading", "snippet", "score"} <= set(hits[0])
    assert hits[0]["heading"] == "Login > The fix" and "cookie" in hits[0]["snippet"]
    filtered = run("search", "quinoa", "--db", db, "--mode", "keyword", "--json", "--path", "work/**")
    assert filtered.exit_code == 0 and filtered.stdout == ""
    human = run("search", "quinoa", "--db", db, "--mode", "keyword", "--since", "2000-01-01", "--type", "txt")
    assert f"{notes / 'home.txt'}:1-1" in human.stdout and "quinoa" in human.stdout

    status = json.loads(run("status", "--db", db, "--json").stdout)
    assert (status["files"], status["dimensions"], status["model"]) == (2, 128, str(tiny_path.resolve()))
    assert "files" in run("status", "--db", db).stdout


def test_add_and_remove_paths(notes, tmp_path, tiny_path):
    db = str(tmp_path / "kb.db")
    added = run("add", str(notes / "work" / "login.md"), str(notes / "home.txt"), "--db", db,
                "--model", str(tiny_path), "--json")
    assert added.exit_code == 0, added.output
    reports = [json.loads(line) for line in added.stdout.splitlines()]
    assert [(r["path"], r["added"]) for r in reports] == [(str(notes / "work" / "login.md"), 1),
                                                         (str(notes / "home.txt"), 1)]
    assert json.loads(run("status", "--db", db, "--json").stdout)["files"] == 2
    folder = run("add", str(notes / "work"), "--db", db, "--model", str(tiny_path))  # already there: nothing to do
    assert "0 added" in folder.stdout and "1 unchanged" in folder.stdout, folder.output

    removed = run("remove", str(notes / "work"), "--db", db, "--json")
    assert removed.exit_code == 0 and json.loads(removed.stdout) == {"path": str(notes / "work"), "removed": 1}
    again = run("remove", str(notes / "work"), str(notes / "home.txt"), "--db", db)
    assert again.exit_code == 1 and f"nothing in the index at {notes / 'work'}" in again.output
    assert "home.txt: 1 file removed" in again.stdout  # the other path was still removed
    assert json.loads(run("status", "--db", db, "--json").stdout)["files"] == 0
    assert run("add", str(tmp_path / "absent.md"), "--db", db).exit_code == 2  # click: path does not exist


def test_model_mismatch_points_to_reembed(notes, tmp_path, tiny_path):
    db = str(tmp_path / "kb.db")
    assert run("index", str(notes), "--db", db, "--model", str(tiny_path)).exit_code == 0
    other = str(tiny_path.parent / "jina-v5-tiny-mlx")
    result = run("search", "login", "--db", db, "--model", other)
    assert result.exit_code == 1 and "--reembed" in result.output and "Traceback" not in result.output
    result = run("index", str(notes), "--db", db, "--model", str(tiny_path), "--dims", "64")
    assert result.exit_code == 1 and "index has 128, requested 64" in result.output
    fixed = run("index", str(notes), "--db", db, "--model", other, "--reembed", "--json")
    assert fixed.exit_code == 0 and json.loads(fixed.stdout)["added"] == 2


def test_unreachable_default_model_falls_back_to_the_tiny_checkpoint(notes, tmp_path, monkeypatch):
    monkeypatch.delenv("MLX_JINA_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    result = run("index", str(notes), "--db", str(tmp_path / "kb.db"), "--json")
    assert result.exit_code == 0, result.output
    assert "NOT semantically meaningful" in result.stderr and json.loads(result.stdout)["added"] == 2
    explicit = run("index", str(notes), "--db", str(tmp_path / "kb2.db"),
                   "--model", "jinaai/jina-embeddings-v5-text-small")
    assert explicit.exit_code == 1 and "NOT semantically" not in explicit.output  # asked for it: no silent swap

    # Searching that index needs no download: it uses the index's model, by keywords unless told otherwise.
    default = run("search", "session cookie", "--db", str(tmp_path / "kb.db"), "--json")
    assert default.exit_code == 0, default.output
    assert "searching by keywords only" in default.stderr
    assert {json.loads(line)["vector_score"] for line in default.stdout.splitlines()} == {None}
    hybrid = run("search", "session cookie", "--db", str(tmp_path / "kb.db"), "--json", "--mode", "hybrid")
    assert hybrid.exit_code == 0 and "vector scores are NOT semantically meaningful" in hybrid.stderr
    assert any(json.loads(line)["vector_score"] is not None for line in hybrid.stdout.splitlines())


def test_db_location_defaults_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("MLX_JINA_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if default_db_path().parent.parent != tmp_path / "data":
        pytest.skip("not an XDG platform")
    assert default_db_path() == tmp_path / "data" / "mlx-jina" / "index.db"
    missing = run("status", "--json")  # status and search never create a database
    assert missing.exit_code == 1 and f"no index at {tmp_path / 'data' / 'mlx-jina' / 'index.db'}" in missing.output
    assert not default_db_path().exists()
    elsewhere = tmp_path / "elsewhere.db"
    assert f"no index at {elsewhere}" in run("search", "x", env={"MLX_JINA_DB": str(elsewhere)}).output


def test_doctor_says_which_sqlite_binding_is_used():
    result = run("doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "sqlite-vec" in report["sqlite_used"] and report["sqlite_used"].split()[0] in report["sqlite_bindings"]
    assert "sqlite_used" in run("doctor").stdout
