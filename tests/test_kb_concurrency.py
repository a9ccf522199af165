"""Crash safety and concurrency: kill -9 during an index run, searching while another process
writes, and watch mode picking up edits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlx_jina.kb import KnowledgeBase
from mlx_jina.kb.connect import backend
from mlx_jina.kb.watch import watch

N_FILES = 400  # one short chunk each: several embedding batches, a few seconds of writing
CLI = "from mlx_jina.cli import main; main()"
WORDS = ("garden river cloud paper lamp window stone music coffee letter bridge winter candle forest "
         "harbor violin ladder mirror pepper rocket tunnel wallet island meadow").split()


def write_notes(root: Path, n: int) -> None:
    root.mkdir()
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + w * 3) % len(WORDS)] for w in range(16))
        (root / f"note{i:03d}.md").write_text(f"# Note {i}\n\nNote {i} is about {words}.\n")


def index_process(notes: Path, db: Path, model: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "index", str(notes), "--db", str(db), "--model", str(model), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def documents_in(db: Path) -> int:
    """Count with a read-only connection (0 while the file is not ready). It must come from the same
    SQLite library as the other connections of this process: two copies of SQLite in one process
    do not see each other's POSIX locks, and closing one drops the other's."""
    sqlite = backend().module
    try:
        conn = sqlite.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        finally:
            conn.close()
    except sqlite.OperationalError:
        return 0


def consistent_counts(kb: KnowledgeBase) -> tuple[int, int]:
    conn = kb.store.conn
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")  # raises if out of step
    docs, chunks, vectors, fts, orphans = conn.execute(
        "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks), (SELECT count(*) FROM chunk_vectors), "
        "(SELECT count(*) FROM chunks_fts_docsize), "
        "(SELECT count(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_id = d.id))"
    ).fetchone()
    assert chunks == vectors == fts and orphans == 0  # every document was written whole
    return docs, chunks


@pytest.mark.slow
def test_kill_9_mid_index_then_resume_while_searching(tmp_path, tiny, tiny_path):
    notes, db = tmp_path / "notes", tmp_path / "kb.db"
    write_notes(notes, N_FILES)
    proc = index_process(notes, db, tiny_path)
    try:
        deadline = time.time() + 60
        while documents_in(db) == 0:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "the index run wrote nothing in 60 s"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with KnowledgeBase(db, model=tiny) as kb:
        done, _ = consistent_counts(kb)
    assert 0 < done < N_FILES, "the run was not killed mid-way"

    # resume in another process while this one searches (WAL: readers never wait for the writer)
    resume = index_process(notes, db, tiny_path)
    seen_counts = set()
    with KnowledgeBase(db, model=tiny) as reader:
        while resume.poll() is None:
            seen_counts.add(documents_in(db))
            assert all(h.rel.startswith("note") for h in reader.search("garden river", k=5))
            assert reader.search("Note", mode="keyword", k=3)
    assert resume.returncode == 0, resume.stderr.read().decode()
    assert any(done < c < N_FILES for c in seen_counts), "no search overlapped the writes"
    report = json.loads(resume.stdout.read())
    assert (report["unchanged"], report["added"], report["removed"]) == (done, N_FILES - done, 0)
    with KnowledgeBase(db, model=tiny) as kb:
        assert consistent_counts(kb) == (N_FILES, N_FILES)
        assert kb.index(notes).chunks_embedded == 0


def test_watch_keeps_the_index_current(tmp_path, tiny):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("first note about gardening\n")
    stop = threading.Event()
    reports = []
    with KnowledgeBase(tmp_path / "kb.db", model=tiny) as kb:
        thread = threading.Thread(target=watch, args=(kb, notes), daemon=True,
                                  kwargs={"debounce_ms": 200, "stop_event": stop, "on_report": reports.append})
        thread.start()
        try:
            _wait_for(lambda: len(reports) >= 1)
            (notes / "b.md").write_text("second note about quokkas\n")
            _wait_for(lambda: any(r.added for r in reports[1:]))
            (notes / "a.md").unlink()
            _wait_for(lambda: any(r.removed for r in reports[1:]))
        finally:
            stop.set()
            thread.join(timeout=10)
        assert not thread.is_alive()
        assert [h.rel for h in kb.search("quokkas", mode="keyword")] == ["b.md"]
        assert kb.search("gardening", mode="keyword") == []


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail("watch did not react in time")
        time.sleep(0.05)
