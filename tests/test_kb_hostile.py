"""Hostile and careless input to the knowledge base (issue 8): one bad entry never stops a run,
nothing wipes an index by accident, and every failure is one clear line."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlx_jina.cli import main
from mlx_jina.errors import InputError, WouldEmptyIndexError
from mlx_jina.kb import KnowledgeBase, knowledge_base
from mlx_jina.kb import indexer as indexer_module


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    root.mkdir()
    for i in range(3):
        (root / f"note{i}.md").write_text(f"# Note {i}\n\nThe zebra number {i} grazes.\n")
    return root


@pytest.fixture
def kb(tmp_path: Path, tiny) -> KnowledgeBase:
    with KnowledgeBase(tmp_path / "kb.db", model=tiny) as kb:
        yield kb


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def files(kb: KnowledgeBase) -> int:
    return kb.status()["files"]


# ---- one bad entry must not stop a run ------------------------------------------------------------
def test_non_utf8_file_name_is_indexed_searchable_and_round_trips(tmp_path, notes, tiny_path):
    raw = os.fsencode(notes) + b"/caf\xe9.md"
    (notes / "note0.md").unlink()  # reported below as skipped: a non-UTF-8 name in `index --json`
    os.symlink(raw.decode("utf-8", "surrogateescape"), notes / "z-link.md")
    try:
        with open(raw, "wb") as f:
            f.write(b"bonjour from the latin-1 cafe\n")
    except OSError:
        pytest.skip("this file system only takes UTF-8 names")
    db = tmp_path / "cli.db"
    first = cli("index", notes, "--db", db, "--model", tiny_path, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["added"] == 3 and report["skipped"] == [{"path": "z-link.md", "reason": "same file as caf\\xe9.md"}]
    again = cli("index", notes, "--db", db, "--model", tiny_path)
    assert "3 unchanged" in again.stdout and "0 removed" in again.stdout
    found = cli("search", "bonjour", "--db", db, "--mode", "keyword", "--json")
    (hit,) = [json.loads(line) for line in found.stdout.splitlines()]
    assert hit["rel"] == "caf\\xe9.md" and found.stdout.encode("utf-8")  # strict JSON: no lone surrogates
    with KnowledgeBase(db) as kb:
        (exact,) = kb.search("bonjour", mode="keyword")
    assert os.fsencode(exact.path) == raw and open(exact.path, "rb").read().startswith(b"bonjour")
    human = cli("search", "bonjour", "--db", db, "--mode", "keyword")
    assert "caf\\xe9.md:1-1" in human.stdout
    os.remove(raw)
    assert json.loads(cli("index", notes, "--db", db, "--model", tiny_path, "--json").stdout)["removed"] == 1


def test_unreadable_skipped_and_deep_entries_do_not_stop_the_run(kb, notes, monkeypatch):
    deep = notes.joinpath(*["d"] * 620)
    deep.mkdir(parents=True)
    (deep / "bottom.md").write_text("the deepest zebra\n")
    (notes / "locked").mkdir()
    (notes / "locked" / "secret.md").write_text("hidden\n")
    real = os.scandir

    def scandir(path):  # what mode 000 does (tests may run as root, whom chmod does not stop)
        if str(path).endswith("/locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = kb.index(notes)
    assert report.added == 4 and report.skipped == [{"path": "locked/", "reason": "permission denied"}]


def test_symlinks_outside_are_reported_and_a_file_is_never_indexed_twice(tmp_path, kb, notes):
    outside = tmp_path / "outside.md"
    outside.write_text("a secret outside the notes\n")
    os.symlink(outside, notes / "escape.md")
    os.symlink(notes / "note0.md", notes / "alias.md")
    report = kb.index(notes)
    assert report.added == 3
    assert {s["path"]: s["reason"] for s in report.skipped} == {
        "escape.md": "symlink to outside the folder (not followed)", "alias.md": "same file as note0.md"}
    assert kb.index(notes, follow_links=True).added == 1


def test_utf16_note_with_bom_is_read(kb, notes):
    (notes / "windows.txt").write_text("Notes from notepad about aardvarks\n", encoding="utf-16")
    assert kb.index(notes).added == 4 and kb.search("aardvarks", mode="keyword")[0].rel == "windows.txt"


# ---- never wipe an index by accident -------------------------------------------------------------
def test_folder_that_vanished_or_emptied_is_refused_unless_allowed(tmp_path, kb, notes, tiny_path):
    kb.index(notes)
    moved = tmp_path / "unmounted"
    notes.rename(moved)
    with pytest.raises(WouldEmptyIndexError, match="missing .* keeps its 3 files"):
        kb.index(notes)
    notes.mkdir()  # an empty mount point
    with pytest.raises(WouldEmptyIndexError, match="no files to index .* 3 files"):
        kb.index(notes)
    assert files(kb) == 3
    result = cli("index", notes, "--db", kb.db_path, "--model", tiny_path)
    assert result.exit_code == 1 and "--allow-empty" in result.output and "Traceback" not in result.output
    assert files(kb) == 3
    assert kb.index(notes, allow_empty=True).removed == 3 and files(kb) == 0


def test_missing_folder_with_prune_removes_its_files(tmp_path, kb, notes, tiny_path):
    kb.index(notes)
    for path in notes.iterdir():
        path.unlink()
    notes.rmdir()
    result = cli("index", notes, "--db", kb.db_path, "--model", tiny_path, "--prune", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["removed"] == 3


def test_a_missing_folder_never_indexed_is_a_clear_error(tmp_path, tiny_path):
    result = cli("index", tmp_path / "nope", "--db", tmp_path / "kb.db", "--model", tiny_path)
    assert result.exit_code == 1 and "not a folder" in result.output


@pytest.mark.parametrize("args", [("--max-bytes", "-5"), ("--max-bytes", "0"), ("--dims", "0")])
def test_nonsense_sizes_are_rejected_not_defaulted(tmp_path, notes, tiny_path, args):
    result = cli("index", notes, "--db", tmp_path / "kb.db", "--model", tiny_path, *args)
    assert result.exit_code == 2 and f"Invalid value for '{args[0]}'" in result.output


def test_nonsense_sizes_in_the_python_api(tmp_path, kb, notes, tiny):
    for bad in (-5, 0):
        with pytest.raises(InputError, match="max_bytes"):
            kb.index(notes, max_bytes=bad)
    for bad in (0, -8, 32.0):
        with pytest.raises(InputError, match="dimensions must be a positive integer"):
            KnowledgeBase(tmp_path / "other.db", model=tiny, dimensions=bad)


# ---- since ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("since,hits", [("0001-01-01", 3), (10 ** 400, 0), (-10 ** 400, 3), (float("inf"), 0),
                                        ("9999-12-31", 0)])
def test_extreme_since_values_clamp(kb, notes, since, hits):
    kb.index(notes)
    assert len(kb.search("zebra", mode="keyword", since=since)) == hits


@pytest.mark.parametrize("since", ["garbage", float("nan"), [2026]])
def test_garbage_since_is_an_input_error(kb, notes, since):
    kb.index(notes)
    with pytest.raises(InputError, match="since"):
        kb.search("zebra", mode="keyword", since=since)


def test_cli_since_far_past_and_garbage(kb, notes):
    kb.index(notes)
    old = cli("search", "zebra", "--db", kb.db_path, "--mode", "keyword", "--since", "0001-01-01")
    assert old.exit_code == 0 and "note0.md" in old.stdout
    bad = cli("search", "zebra", "--db", kb.db_path, "--mode", "keyword", "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "Invalid value for '--since'" in bad.output


# ---- signals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_mid_index_says_the_index_is_consistent_and_the_rerun_resumes(tmp_path, notes, tiny_path,
                                                                             monkeypatch, signum):
    for i in range(3, 8):
        (notes / f"note{i}.md").write_text(f"# Note {i}\n\nThe zebra number {i} grazes.\n")
    monkeypatch.setattr(knowledge_base, "BATCH_CHUNKS", 1)  # one file per batch
    real = indexer_module.Indexer._embed
    calls = []

    def embed_then_die(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signum)  # arrives mid-run, while earlier files are being written
        return real(self, *args, **kwargs)

    monkeypatch.setattr(indexer_module.Indexer, "_embed", embed_then_die)
    db = tmp_path / "kb.db"
    before = signal.getsignal(signum)
    stopped = cli("index", notes, "--db", db, "--model", tiny_path)
    assert stopped.exit_code == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}: the index is consistent" in stopped.output
    assert "resume" in stopped.output and "Traceback" not in stopped.output
    assert signal.getsignal(signum) == before  # the handler is put back
    monkeypatch.setattr(indexer_module.Indexer, "_embed", real)
    done = int(json.loads(cli("status", "--db", db, "--json").stdout)["files"])
    assert done == 2
    resumed = json.loads(cli("index", notes, "--db", db, "--model", tiny_path, "--json").stdout)
    assert (resumed["added"], resumed["unchanged"]) == (8 - done, done)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_watch_with_one_line_and_the_shell_status(tmp_path, notes, tiny_path, monkeypatch, signum):
    from mlx_jina.kb import watch as watch_module

    real = watch_module.watch
    give_up = threading.Event()  # a signal that never stops the watch fails the test instead of hanging it

    def watch_then_signal(kb, folder, *, on_report, **kwargs):
        def report_then_signal(report):
            on_report(report)
            threading.Timer(0.3, os.kill, (os.getpid(), signum)).start()  # while watching for changes
            fallback = threading.Timer(30, give_up.set)
            fallback.daemon = True
            fallback.start()
        return real(kb, folder, on_report=report_then_signal, stop_event=give_up, **kwargs)

    monkeypatch.setattr(watch_module, "watch", watch_then_signal)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh `mlx-jina` process
    try:
        stopped = cli("watch", notes, "--db", tmp_path / "kb.db", "--model", tiny_path)
    finally:
        signal.signal(signal.SIGINT, previous)
        give_up.set()
    assert stopped.exit_code == 128 + signum
    assert f"stopped by {signal.Signals(signum).name}" in stopped.output and "Traceback" not in stopped.output
    assert "3 files seen: 3 added" in stopped.output  # the first sync ran and was reported


def test_query_with_a_lone_surrogate_is_an_input_error(kb, notes):
    kb.index(notes)
    with pytest.raises(InputError, match="the query is not valid Unicode"):
        kb.search("zebra \udce9", mode="keyword")
