"""A knowledge-base file that is not a database, corrupt, read-only or on a full disk: one line that
names the file and says what is wrong, never a traceback; status and search still work read-only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_jina.cli import main
from mlx_jina.errors import DatabaseError
from mlx_jina.kb import KnowledgeBase
from mlx_jina.kb import store as store_module


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    root.mkdir()
    for i in range(12):
        (root / f"n{i}.md").write_text(f"# Note {i}\n\n" + " ".join(f"zebra{i} word{j}" for j in range(60)) + "\n")
    return root


@pytest.fixture
def built(tmp_path: Path, notes: Path, tiny) -> Path:
    db = tmp_path / "kb.db"
    with KnowledgeBase(db, model=tiny) as kb:
        kb.index(notes)
    return db


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    for needle in needles:
        assert needle in line, line


def test_random_bytes_are_not_a_mlx_jina_database(tmp_path, notes, tiny_path):
    db = tmp_path / "random.db"
    db.write_bytes(os.urandom(64 * 1024))
    for args in (("status",), ("search", "zebra", "--mode", "keyword"),
                 ("index", notes, "--model", tiny_path)):
        one_line_error(cli(*args, "--db", db), str(db), "not a mlx-jina database")
    assert "not a mlx-jina database" in json.loads(cli("doctor", "--db", db, "--json").stdout)["db_state"]
    with pytest.raises(DatabaseError, match="not a mlx-jina database"):
        KnowledgeBase(db)


def test_corrupted_pages_are_called_corrupt_with_the_way_out(built, tiny_path):
    with open(built, "r+b") as f:
        f.seek(4096 * 4)
        f.write(os.urandom(4096 * 30))
    assert json.loads(cli("doctor", "--db", built, "--json").stdout)["db_state"].startswith("corrupt")
    one_line_error(cli("search", "zebra3", "--db", built, "--mode", "keyword"), str(built), "corrupt",
                   "mlx-jina index FOLDER")
    one_line_error(cli("serve", "--db", built, "--model", tiny_path, "--port", "1"), str(built), "corrupt")


def test_serve_refuses_a_file_that_is_not_a_database(tmp_path, tiny_path):
    db = tmp_path / "junk.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(8000))
    one_line_error(cli("serve", "--db", db, "--model", tiny_path, "--port", "1"), str(db))


def deny_writes(monkeypatch, *paths: Path) -> None:
    """What a read-only file or folder looks like to os.access (tests may run as root, whom chmod does
    not stop; SQLite's own mode=ro, which the store then uses, does stop root)."""
    real = os.access
    denied = {str(p) for p in paths}
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if mode & os.W_OK and str(p) in denied
                        else real(p, mode, **kw))


def test_read_only_file_can_be_searched_but_not_indexed(built, notes, tiny_path, monkeypatch):
    deny_writes(monkeypatch, built)
    status = json.loads(cli("status", "--db", built, "--json").stdout)
    assert (status["files"], status["access"]) == (12, "read-only")
    found = cli("search", "zebra3", "--db", built, "--mode", "keyword", "--json")
    assert found.exit_code == 0 and json.loads(found.stdout.splitlines()[0])["rel"] == "n3.md"
    one_line_error(cli("index", notes, "--db", built, "--model", tiny_path), str(built), "read-only")
    assert "read-only" in json.loads(cli("doctor", "--db", built, "--json").stdout)["db_state"]
    with KnowledgeBase(built) as kb:
        with pytest.raises(kb.store.backend.module.Error, match="readonly"):
            kb.store.conn.execute("DELETE FROM documents")  # SQLite itself refuses: opened mode=ro


def test_read_only_folder_is_searched_immutable(built, monkeypatch):
    with KnowledgeBase(built) as kb:
        kb.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for extra in (Path(f"{built}-wal"), Path(f"{built}-shm")):
        extra.unlink(missing_ok=True)  # a folder copied from a read-only volume has neither
    deny_writes(monkeypatch, built, built.parent)
    found = cli("search", "zebra5", "--db", built, "--mode", "keyword", "--json")
    assert found.exit_code == 0 and json.loads(found.stdout.splitlines()[0])["rel"] == "n5.md"


def test_new_database_in_a_read_only_folder(tmp_path, notes, tiny_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    deny_writes(monkeypatch, folder)
    one_line_error(cli("index", notes, "--db", folder / "kb.db", "--model", tiny_path), str(folder / "kb.db"),
                   "folder is read-only")


def test_full_disk_is_one_line_and_the_rerun_finishes(tmp_path, notes, tiny_path, monkeypatch):
    db = tmp_path / "kb.db"
    with KnowledgeBase(db) as kb:  # the empty schema, without the free pages its earlier layouts left
        kb.store.conn.execute("VACUUM")
        empty = kb.store.conn.execute("PRAGMA page_count").fetchone()[0]
        page = kb.store.conn.execute("PRAGMA page_size").fetchone()[0]
    real = store_module.connect

    def small_disk(path, **kw):
        conn, found = real(path, **kw)
        conn.execute(f"PRAGMA max_page_count = {empty + 8192 // page}")  # SQLITE_FULL after about 8 KB of notes
        return conn, found

    monkeypatch.setattr(store_module, "connect", small_disk)
    one_line_error(cli("index", notes, "--db", db, "--model", tiny_path), str(db), "disk full", "consistent")
    monkeypatch.setattr(store_module, "connect", real)
    partial = json.loads(cli("status", "--db", db, "--json").stdout)["files"]
    assert 0 <= partial < 12
    rerun = json.loads(cli("index", notes, "--db", db, "--model", tiny_path, "--json").stdout)
    assert rerun["added"] == 12 - partial and rerun["unchanged"] == partial
