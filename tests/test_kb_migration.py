"""A database an earlier mlx-jina wrote keeps working: schema 4 (sign bits in `chunk_codes`, int8
vectors in `chunk_int8`) is migrated to one `chunk_vectors` row per chunk without re-embedding,
searches exactly like a database written today, and a migration killed at any moment leaves the
old layout or the new one, never a mix."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from mlx_jina.kb import vectors
from mlx_jina.kb.connect import connect
from mlx_jina.kb.schema import NEW_VECTORS_TOKEN, SCHEMA_VERSION, migrate
from mlx_jina.kb.search import Filters, search
from mlx_jina.kb.store import Binding, NewChunk, Store

BINDING = Binding("fake", None, None, 64)
WORDS = "login session token cache migration postgres backup invoice budget garden recipe travel".split()


def documents(rng: np.random.Generator, n_docs: int, per_doc: int, dims: int = BINDING.dimensions) -> list[dict]:
    """Documents as `Store.write_document` takes them: markdown and code, words drawn from WORDS."""
    bits, int8 = vectors.encode(_unit(rng.standard_normal((n_docs * per_doc, dims))))
    docs = []
    for d in range(n_docs):
        rel = f"{'work' if d % 2 else 'home'}/note{d}.{'py' if d % 3 == 0 else 'md'}"
        chunks = []
        for s in range(per_doc):
            i = d * per_doc + s
            body = " ".join(rng.choice(WORDS, 12))
            text = f"{rel} > Part {s}\n\n{body}"
            chunks.append(NewChunk(s, f"Part {s}", s * 3 + 1, s * 3 + 2, text, body,
                                   hashlib.sha256(text.encode()).digest(), bits[i], int8[i]))
        docs.append({"path": f"/n/{rel}", "root": "/n", "rel": rel, "kind": "code" if rel.endswith(".py") else
                     "markdown", "language": None, "content_hash": hashlib.sha256(rel.encode()).digest(),
                     "size": 10, "mtime": float(d), "chunks": chunks})
    return docs


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_schema4(path: Path, docs: list[dict], binding: Binding = BINDING) -> None:
    """The database mlx-jina's schema-4 `Store` wrote for these documents (its SQL, statement by statement)."""
    conn, _ = connect(path)
    assert migrate(conn, until=4) == 4
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                     [(k, None if v is None else str(v)) for k, v in asdict(binding).items()])
    for doc in docs:
        doc_id = conn.execute(
            "INSERT INTO documents(root, rel, kind, language, content_hash, size, mtime, indexed_at, path) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (doc["root"], doc["rel"], doc["kind"], doc["language"],
                                                   doc["content_hash"], doc["size"], doc["mtime"], 1.0, doc["path"])
        ).lastrowid
        for c in doc["chunks"]:
            chunk_id = conn.execute(
                "INSERT INTO chunks(doc_id, seq, heading, start_line, end_line, header, body, text_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (doc_id, c.seq, c.heading, c.start_line, c.end_line,
                                                    c.text.removesuffix(c.body), c.body, c.text_hash)).lastrowid
            conn.execute("INSERT INTO chunk_codes(chunk_id, doc_id, bits) VALUES (?, ?, ?)", (chunk_id, doc_id, c.bits))
            conn.execute("INSERT INTO chunk_int8(chunk_id, int8) VALUES (?, ?)", (chunk_id, c.rescore))
    conn.execute(NEW_VECTORS_TOKEN)
    conn.execute("COMMIT")
    conn.close()


def schema4_vectors(path: Path) -> list[tuple]:
    conn, _ = connect(path)
    rows = conn.execute("SELECT k.chunk_id, k.doc_id, k.bits, i.int8 FROM chunk_codes k "
                        "JOIN chunk_int8 i USING (chunk_id) ORDER BY 1").fetchall()
    conn.close()
    return rows


def stored_vectors(store: Store) -> list[tuple]:
    return store.conn.execute("SELECT chunk_id, doc_id, bits, int8 FROM chunk_vectors ORDER BY 1").fetchall()


def test_a_schema_4_database_is_migrated_and_searches_exactly_like_a_new_one(tmp_path, capsys):
    rng = np.random.default_rng(0)
    docs = documents(rng, 30, 7)
    write_schema4(tmp_path / "old.db", docs)
    before = schema4_vectors(tmp_path / "old.db")
    conn, _ = connect(tmp_path / "old.db")
    old_token = conn.execute("SELECT value FROM meta WHERE key = 'vectors_token'").fetchone()[0]
    conn.close()
    old = Store(tmp_path / "old.db")
    assert "storing the vectors of 210 chunks in one table" in capsys.readouterr().err
    new = Store(tmp_path / "new.db")
    new.bind(BINDING)
    new.write_documents(docs)

    assert old.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert stored_vectors(old) == before == stored_vectors(new)  # nothing re-embedded, nothing lost
    tables = {r[0] for r in old.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    assert {"chunk_vectors", "chunk_vectors_doc"} <= tables and not tables & {"chunk_codes", "chunk_int8"}
    assert old.meta()["vectors_token"] != old_token  # an index cached from the old tables is rebuilt
    assert old.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    queries = _unit(rng.standard_normal((5, BINDING.dimensions)))
    for q in queries:
        text = " ".join(rng.choice(WORDS, 3))
        for mode in ("vector", "keyword", "hybrid"):
            for filters in (Filters(), Filters(path="work/*"), Filters(kinds=("py",)), Filters(since=20.0)):
                hits = search(old, text, q, k=8, mode=mode, filters=filters)
                assert hits and hits == search(new, text, q, k=8, mode=mode, filters=filters), (mode, filters)
    assert old.vectors_for([docs[3]["chunks"][2].text_hash]) == new.vectors_for([docs[3]["chunks"][2].text_hash])
    old.remove_document(old.document("/n/work/note1.md").id)
    assert old.conn.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0] == 210 - 7
    old.close()
    new.close()
    Store(tmp_path / "old.db").close()
    assert capsys.readouterr().err == ""  # once


MIGRATE = """
import sys
from mlx_jina.kb.store import Store
Store(sys.argv[1]).close()
print("done", flush=True)
"""


@pytest.mark.slow
def test_a_migration_killed_at_any_moment_leaves_the_old_layout_or_the_new(tmp_path):
    """kill -9 of the process migrating a 4,000-chunk file (1024-d: ~5 MB to copy), at several
    moments after it said it started; the next open finds schema 4 or 5, whole, and migrates it
    with every vector intact."""
    db = tmp_path / "kb.db"
    rng = np.random.default_rng(1)
    write_schema4(db, documents(rng, 400, 10, dims=1024), Binding("fake", None, None, 1024))
    before = schema4_vectors(db)
    killed_mid_way = 0
    for delay in (0.0, 0.02, 0.1):
        proc = subprocess.Popen([sys.executable, "-c", MIGRATE, str(db)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        line = proc.stderr.readline().decode()
        if "storing the vectors" in line:
            try:
                proc.wait(timeout=delay or 0.001)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        conn, _ = connect(db, readonly=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        if proc.returncode == -signal.SIGKILL and version == 4:
            killed_mid_way += 1
            assert schema4_vectors(db) == before
        else:
            assert version == 5, line + proc.stderr.read().decode()
    assert killed_mid_way  # at least one kill landed inside the migration's transaction
    with Store(db) as store:
        assert stored_vectors(store) == before
