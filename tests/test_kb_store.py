"""Knowledge-base storage without a model: SQLite binding fallback, schema versions, the vector
codec and the binary KNN + int8 rescoring path against exact float search."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from mlx_jina.kb import connect as kbconnect
from mlx_jina.kb import vectors
from mlx_jina.kb.schema import SCHEMA_VERSION, SchemaError
from mlx_jina.kb.search import Filters, search
from mlx_jina.kb.store import Binding, ModelMismatchError, NewChunk, Store


@pytest.fixture
def fresh_backend(monkeypatch: pytest.MonkeyPatch):
    """Let a test choose the SQLite binding via the environment (the choice is cached per process)."""
    kbconnect.backend.cache_clear()
    yield monkeypatch
    kbconnect.backend.cache_clear()


def unit_rows(rng: np.random.Generator, n: int, dims: int, clusters: int = 100) -> np.ndarray:
    """Clustered unit vectors: like real embeddings, unlike isotropic noise, they have structure."""
    centers = rng.standard_normal((clusters, dims))
    x = centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, dims))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write_vectors(store: Store, x: np.ndarray, *, path: str = "/notes/a.md", kind: str = "markdown",
                  mtime: float = 1.0) -> None:
    bits, int8 = vectors.encode(x)
    chunks = [NewChunk(i, "", i + 1, i + 1, f"text {i}", f"body {i}", f"hash-{path}-{i}", bits[i], int8[i])
              for i in range(len(x))]
    store.write_document(path=path, root="/notes", rel=path.removeprefix("/notes/"), kind=kind, language=None,
                         content_hash=f"file-{path}", size=1, mtime=mtime, chunks=chunks)


def test_stdlib_sqlite3_here_cannot_load_extensions_so_the_fallback_is_used(fresh_backend, tmp_path):
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        pytest.skip("this Python's sqlite3 can load extensions")
    store = Store(tmp_path / "kb.db")
    assert store.backend.name != "sqlite3"
    assert store.conn.execute("SELECT vec_version()").fetchone()[0].startswith("v")


def test_forcing_an_unusable_binding_is_a_clear_error(fresh_backend, tmp_path):
    if hasattr(sqlite3.Connection, "enable_load_extension"):
        pytest.skip("this Python's sqlite3 can load extensions")
    fresh_backend.setenv(kbconnect.BACKEND_ENV, "sqlite3")
    with pytest.raises(kbconnect.SQLiteUnavailableError, match=r"(?s)cannot load extensions.*pip install sqlean.py"):
        Store(tmp_path / "kb.db")
    fresh_backend.setenv(kbconnect.BACKEND_ENV, "nonsense")
    with pytest.raises(kbconnect.SQLiteUnavailableError, match="not one of"):
        Store(tmp_path / "kb.db")


def test_probe_reports_every_binding(fresh_backend):
    report = dict(kbconnect.probe())
    assert set(report) == set(kbconnect.BACKENDS)
    assert any(state.startswith("ok") for state in report.values())


def test_schema_is_versioned_and_refuses_newer_or_foreign_files(tmp_path):
    db = tmp_path / "kb.db"
    Store(db).close()
    plain = sqlite3.connect(db)  # any SQLite tool opens it: the plain tables need no extension
    assert plain.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    plain.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    plain.commit()
    plain.close()
    with pytest.raises(SchemaError, match="newer|Upgrade"):
        Store(db)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE something (x)")
    with pytest.raises(SchemaError, match="not a mlx-jina database"):
        Store(other)


def test_binding_mismatch_names_both_and_the_way_forward(tmp_path):
    store = Store(tmp_path / "kb.db")
    store.bind(Binding("model-a", None, None, 64))
    store.bind(Binding("model-a", None, None, 64))  # same: fine
    with pytest.raises(ModelMismatchError, match=r"'model-a'.*'model-b'.*--reembed"):
        store.bind(Binding("model-b", None, None, 64))
    with pytest.raises(ModelMismatchError, match=r"dimensions: index has 64, requested 32"):
        store.bind(Binding("model-a", None, None, 32))


def test_codec_bits_match_sqlite_vec_quantizer_and_int8_keeps_cosine(tmp_path):
    rng = np.random.default_rng(1)
    x = unit_rows(rng, 20, 64)
    bits, int8 = vectors.encode(x)
    store = Store(tmp_path / "kb.db")
    for row, packed in zip(x, bits):
        ours = store.conn.execute("SELECT vec_quantize_binary(?)", (row.tobytes(),)).fetchone()[0]
        assert bytes(ours) == packed
    assert len(bits[0]) == 64 // 8 and len(int8[0]) == 64
    stored = np.frombuffer(b"".join(int8), dtype=np.int8).reshape(len(x), -1)
    np.testing.assert_allclose(vectors.rescore(x[0], stored), x @ x[0], atol=5e-3)


def test_binary_knn_with_rescoring_recalls_exact_float_search(tmp_path):
    rng = np.random.default_rng(0)
    x = unit_rows(rng, 4050, 256)
    queries, x = x[4000:], x[:4000]
    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 256))
    write_vectors(store, x)
    recall, hamming_only = [], []
    for q in queries:
        exact = set((np.argsort(-(x @ q))[:10] + 1).tolist())  # chunk ids start at 1
        hits = search(store, "unused", q, k=10, mode="vector", per_doc=10)
        recall.append(len(exact & {h.chunk_id for h in hits}) / 10)
        rows = store.conn.execute(
            "SELECT chunk_id FROM chunk_vectors ORDER BY vec_distance_hamming(vec_bit(bits), vec_bit(?)) LIMIT 10",
            (vectors.query_bits(q),)).fetchall()
        hamming_only.append(len(exact & {r[0] for r in rows}) / 10)
    assert np.mean(recall) >= 0.95
    assert np.mean(recall) > np.mean(hamming_only) + 0.2  # rescoring is what makes bits usable
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_filters_apply_inside_the_vector_query(tmp_path):
    rng = np.random.default_rng(2)
    x = unit_rows(rng, 60, 64)
    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 64))
    write_vectors(store, x[:30], path="/notes/work/a.md", mtime=100.0)
    write_vectors(store, x[30:], path="/notes/home/b.py", kind="code", mtime=200.0)
    q = x[0]
    assert {h.rel for h in search(store, "q", q, mode="vector", per_doc=5)} == {"work/a.md", "home/b.py"}
    for filters, expected in [
        (Filters(path="work/**"), {"work/a.md"}),
        (Filters(path="/notes/home/*"), {"home/b.py"}),
        (Filters(kinds=("py",)), {"home/b.py"}),
        (Filters(kinds=("markdown",)), {"work/a.md"}),
        (Filters(since=150.0), {"home/b.py"}),
    ]:
        hits = search(store, "q", q, k=10, mode="vector", filters=filters, per_doc=10)
        assert {h.rel for h in hits} == expected, filters
        assert len(hits) == 10
    assert search(store, "q", q, mode="vector", filters=Filters(path="nowhere/*")) == []


def test_results_are_grouped_per_document(tmp_path):
    rng = np.random.default_rng(3)
    x = unit_rows(rng, 40, 64, clusters=2)
    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 64))
    for i in range(4):
        write_vectors(store, x[i * 10:(i + 1) * 10], path=f"/notes/{i}.md")
    for per_doc in (1, 2):
        hits = search(store, "q", x[0], k=10, mode="vector", per_doc=per_doc)
        counts = {h.rel: sum(1 for g in hits if g.rel == h.rel) for h in hits}
        assert len(hits) == 4 * per_doc and set(counts.values()) == {per_doc}


def test_removing_a_document_removes_its_chunks_fts_rows_and_vectors(tmp_path):
    rng = np.random.default_rng(4)
    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 64))
    write_vectors(store, unit_rows(rng, 5, 64))
    doc = store.document("/notes/a.md")
    store.remove_document(doc.id)
    counts = store.conn.execute("SELECT (SELECT count(*) FROM chunks), (SELECT count(*) FROM chunk_vectors), "
                                "(SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'body')").fetchone()
    assert counts == (0, 0, 0)


def test_the_readme_plain_sql_query_finds_what_the_knowledge_base_finds(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    sql = re.search(r"```sql\n(SELECT d.rel.*?)```", readme, re.S).group(1)
    rng = np.random.default_rng(6)
    x = unit_rows(rng, 1000, 128)
    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 128))
    write_vectors(store, x)
    for q in x[:20] + 0.2 * unit_rows(rng, 20, 128):
        q /= np.linalg.norm(q)
        plain = [r[2] for r in store.conn.execute(sql, {"q": q.astype(np.float32).tobytes()})]
        ours = [h.start_line for h in search(store, "unused", q, k=10, mode="vector", per_doc=10)]
        assert len(set(plain) & set(ours)) >= 8


def test_term_frequencies_equal_counting_each_term_and_stop_at_the_cap(tmp_path):
    from mlx_jina.kb import keywords
    from mlx_jina.kb.search import document_frequencies

    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 64))
    bodies = ["Running the runner runs", "snake_case names and CamelCase", "café résumé naïve", "迁移到了PostgreSQL",
              "the login bug", "the session cookie", "Tokens: 42 and 4.2"]
    rng = np.random.default_rng(7)
    bits, int8 = vectors.encode(unit_rows(rng, len(bodies), 64))
    store.write_document(path="/notes/a.md", root="/notes", rel="a.md", kind="markdown", language=None,
                         content_hash="h", size=1, mtime=1.0,
                         chunks=[NewChunk(i, "", 1, 1, b, b, f"h{i}", bits[i], int8[i]) for i, b in enumerate(bodies)])
    terms = keywords.query_terms("runs RUNNING snake_case cafe résumé 迁移 迁 the login 42 absent 4.2")
    with store.snapshot() as conn:
        got = document_frequencies(conn, terms)
        counted = {t: conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (t,)).fetchone()[0]
                   for t in terms}
        capped = document_frequencies(conn, terms, cap=2)
    assert got == counted
    assert capped == {t: min(n, 2) for t, n in counted.items()}
    assert counted['"the"'] == 3 and counted['"absent"'] == 0 and counted['"runs"'] == 1


def test_remembered_term_counts_follow_every_write(tmp_path):
    from mlx_jina.kb.search import term_counts

    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 64))
    bits, int8 = vectors.encode(unit_rows(np.random.default_rng(9), 3, 64))

    def write(path: str, bodies: list[str]) -> None:
        store.write_document(path=path, root="/notes", rel=path[7:], kind="markdown", language=None,
                             content_hash=path, size=1, mtime=1.0,
                             chunks=[NewChunk(i, "", 1, 1, b, b, f"{path}{i}", bits[i], int8[i])
                                     for i, b in enumerate(bodies)])

    write("/notes/a.md", ["zebra crossing", "a quiet street"])
    with store.snapshot() as conn:
        assert term_counts(store, conn, ['"zebra"', '"street"'], 10) == {'"zebra"': 1, '"street"': 1}
    write("/notes/b.md", ["zebra stripes", "another zebra", "no such animal"])
    with store.snapshot() as conn:
        assert term_counts(store, conn, ['"zebra"', '"street"'], 10) == {'"zebra"': 3, '"street"': 1}
        assert term_counts(store, conn, ['"zebra"'], 2) == {'"zebra"': 2}  # the cap is part of the key
    store.remove_document(store.conn.execute("SELECT id FROM documents WHERE rel = 'b.md'").fetchone()[0])
    with store.snapshot() as conn:
        assert term_counts(store, conn, ['"zebra"'], 10) == {'"zebra"': 1}


def test_a_batch_of_documents_is_written_whole_or_not_at_all(tmp_path):
    rng = np.random.default_rng(8)
    store = Store(tmp_path / "kb.db")
    store.bind(Binding("fake", None, None, 64))
    bits, int8 = vectors.encode(unit_rows(rng, 2, 64))

    def doc(path: str, vector_bits: bytes | None) -> dict:
        return {"path": path, "root": "/notes", "rel": path[7:], "kind": "text", "language": None,
                "content_hash": path, "size": 1, "mtime": 1.0,
                "chunks": [NewChunk(0, "", 1, 1, "t", "b", path, vector_bits, int8[0])]}

    with pytest.raises(Exception, match="NOT NULL"):
        store.write_documents([doc("/notes/a.md", bits[0]), doc("/notes/b.md", None)])
    assert store.conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    store.write_documents([doc("/notes/a.md", bits[0]), doc("/notes/b.md", bits[1])])
    assert store.conn.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0] == 2
