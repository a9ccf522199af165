"""End to end with the tiny checkpoint: real files in temporary folders, indexed and searched
through mlx_jina.KnowledgeBase. The tiny model's vectors mean nothing, so relevance is checked
through keyword hits; everything else (counts, reuse, renames, bad files) is exact."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import mlx_jina
from mlx_jina.errors import InputError
from mlx_jina.ingest import UnreadableFile
from mlx_jina.kb import KnowledgeBase, ModelMismatchError
from mlx_jina.kb import indexer as indexer_module

LOGIN = """# Login service

## The login bug

Users were logged out after five minutes. We fixed the login bug by renewing the session
cookie on every request instead of only at sign-in.

## Deployment

Deploys go through the blue/green pipeline; roll back with the previous image tag.
"""
RECIPE = "Pancakes\n\nMix flour, milk and eggs. Fry in butter until golden. Serve with maple syrup.\n"
CODE = 'def parse_config(path):\n    """Read the TOML settings file and return a dict."""\n    return {}\n'


def make_notes(root: Path) -> Path:
    (root / "work").mkdir(parents=True)
    (root / "work" / "login.md").write_text(LOGIN)
    (root / "home").mkdir()
    (root / "home" / "pancakes.txt").write_text(RECIPE)
    (root / "code.py").write_text(CODE)
    return root


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    return make_notes(tmp_path / "notes")


@pytest.fixture
def kb(tmp_path: Path, tiny) -> KnowledgeBase:
    with KnowledgeBase(tmp_path / "kb.db", model=tiny) as kb:
        yield kb


def counts(kb: KnowledgeBase) -> tuple[int, int, int, int]:
    """documents, chunks, vec rows, FTS rows: always consistent."""
    return kb.store.conn.execute(
        "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks), (SELECT count(*) FROM chunk_vectors),"
        " (SELECT count(*) FROM chunks_fts_docsize)").fetchone()


def test_python_api_is_exported():
    assert mlx_jina.KnowledgeBase is KnowledgeBase


def test_first_index_then_nothing_to_do(kb, notes):
    first = kb.index(notes)
    assert (first.seen, first.added, first.changed, first.removed) == (3, 3, 0, 0)
    docs, chunks, vecs, fts = counts(kb)
    assert docs == 3 and chunks == vecs == fts == first.chunks_embedded >= 4
    again = kb.index(notes)
    assert (again.seen, again.unchanged, again.added, again.changed, again.chunks_embedded) == (3, 3, 0, 0, 0)
    os.utime(notes / "code.py", (1e9, 1e9))  # touched, same bytes: hashed, not embedded
    touched = kb.index(notes)
    assert (touched.unchanged, touched.chunks_embedded) == (3, 0)
    status = kb.status()
    assert (status["files"], status["chunks"], status["dimensions"]) == (3, chunks, 128)
    assert status["model"] == str(Path(kb.embedder.info.model_id).resolve())
    assert status["last_index_at"] is not None and status["db_bytes"] > 0


def test_edit_rename_delete(kb, notes):
    kb.index(notes)
    before = counts(kb)
    text = LOGIN.replace("roll back with the previous image tag", "roll back with `deploy --undo`")
    (notes / "work" / "login.md").write_text(text)
    edit = kb.index(notes)
    assert (edit.changed, edit.added) == (1, 0)
    assert edit.chunks_reused >= 1 and edit.chunks_embedded >= 1  # the untouched section kept its vector
    assert [h.rel for h in kb.search("undo", mode="keyword")] == ["work/login.md"]

    (notes / "home" / "pancakes.txt").rename(notes / "home" / "breakfast.txt")
    rename = kb.index(notes)
    assert (rename.renamed, rename.added, rename.removed, rename.chunks_embedded) == (1, 0, 0, 0)
    assert [h.rel for h in kb.search("maple syrup", mode="keyword")] == ["home/breakfast.txt"]

    (notes / "code.py").unlink()
    delete = kb.index(notes)
    assert (delete.removed, delete.seen) == (1, 2)
    assert kb.search("TOML settings", mode="keyword") == []
    docs, chunks, vecs, fts = counts(kb)
    assert docs == 2 and chunks == vecs == fts < before[1]


def test_copy_of_a_file_is_embedded_with_its_own_path_as_context(kb, notes):
    kb.index(notes)
    shutil.copy(notes / "work" / "login.md", notes / "home" / "login.md")
    report = kb.index(notes)
    copied = kb.store.conn.execute(
        "SELECT c.header || c.body FROM chunks c JOIN documents d ON d.id = c.doc_id "
        "WHERE d.rel = 'home/login.md'").fetchall()
    assert report.added == 1 and report.chunks_embedded == len(copied) >= 2
    assert all(text.startswith("home/login.md") for (text,) in copied)  # the header names the folder too
    assert counts(kb)[0] == 4
    assert {h.rel for h in kb.search("session cookie", mode="keyword", k=4)} >= {"work/login.md", "home/login.md"}


def test_bad_inputs_are_reported_and_skipped(kb, notes, tmp_path, monkeypatch):
    (notes / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (notes / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    (notes / "photo.png").write_bytes(b"\x89PNG....")
    (notes / "huge.md").write_text("word " * 50_000)
    (notes / "empty.md").write_text("")
    (notes / ".git").mkdir()
    (notes / ".git" / "config.txt").write_text("hidden")
    (notes / "node_modules" / "pkg").mkdir(parents=True)
    (notes / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1")
    (notes / ".gitignore").write_text("build/\n*.log\n")
    (notes / "build").mkdir()
    (notes / "build" / "out.md").write_text("generated")
    (notes / "debug.log").write_text("log line")
    (notes / "drafts").mkdir()
    (notes / "drafts" / "idea.md").write_text("half an idea")
    (notes / "broken.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    (notes / "dangling.md").symlink_to(notes / "missing-target.md")
    (notes / "vanishing.md").write_text("here at scan time, gone at read time")
    real_read = indexer_module.read_document

    def read_after_delete(path: Path):
        if path.name == "vanishing.md":
            path.unlink()
        return real_read(path)

    monkeypatch.setattr(indexer_module, "read_document", read_after_delete)
    report = kb.index(notes, exclude=["drafts/"], max_bytes=100_000)
    reasons = {item["path"]: item["reason"] for item in report.skipped}
    assert reasons["latin1.txt"].startswith("invalid UTF-8")
    assert "binary" in reasons["blob.txt"] and "binary" in reasons["photo.png"]
    assert "larger than" in reasons["huge.md"]
    assert "gitignore" in reasons["build/"] and "gitignore" in reasons["debug.log"]
    assert "exclude" in reasons["drafts/"]
    assert "PDF" in reasons["broken.pdf"]
    assert reasons["dangling.md"] == "broken symlink"
    assert reasons["vanishing.md"] == "file vanished"
    indexed = {r[0] for r in kb.store.conn.execute("SELECT rel FROM documents")}
    assert indexed == {"work/login.md", "home/pancakes.txt", "code.py", "empty.md"}


def test_a_file_that_becomes_unreadable_is_dropped_not_fatal(kb, notes, monkeypatch):
    kb.index(notes)
    (notes / "code.py").write_text(CODE + "\n# more\n")
    real_read = indexer_module.read_document

    def deny(path: Path):
        if path.name == "code.py":
            raise UnreadableFile("permission denied")
        return real_read(path)

    monkeypatch.setattr(indexer_module, "read_document", deny)
    report = kb.index(notes)
    assert {"path": "code.py", "reason": "permission denied"} in report.skipped
    assert report.removed == 1 and counts(kb)[0] == 2


def test_hybrid_search_finds_keyword_hits(kb, notes):
    (notes / "work" / "incident.md").write_text("# Incident 4711\n\nThe zanzibar-7 cache stampede took the API down.\n")
    kb.index(notes)
    for mode in ("hybrid", "keyword"):
        hits = kb.search("what happened with zanzibar-7", mode=mode, k=3)
        assert hits[0].rel == "work/incident.md", mode
        assert hits[0].keyword_score is not None and "zanzibar" in hits[0].snippet
    vector = kb.search("zanzibar", mode="vector", k=3)
    assert len(vector) == 3 and all(h.keyword_score is None and h.vector_score is not None for h in vector)
    hit = kb.search("login bug session cookie", mode="hybrid", k=1)[0]
    assert (hit.rel, hit.heading) == ("work/login.md", "Login service > The login bug")
    assert hit.start_line <= 5 <= hit.end_line


def test_search_filters(kb, notes):
    kb.index(notes)
    os.utime(notes / "home" / "pancakes.txt", (1.6e9, 1.6e9))  # 2020
    kb.index(notes)
    assert {h.rel for h in kb.search("the", k=10, path="work/**")} == {"work/login.md"}
    assert {h.rel for h in kb.search("the", k=10, kinds=["py"])} == {"code.py"}
    assert {h.rel for h in kb.search("the", k=10, kinds=["text"])} == {"home/pancakes.txt"}
    assert "home/pancakes.txt" not in {h.rel for h in kb.search("pancakes", k=10, since="2024-01-01")}
    with pytest.raises(InputError, match="ISO date"):
        kb.search("x", since="yesterday")
    with pytest.raises(InputError, match="mode"):
        kb.search("x", mode="fuzzy")


def test_index_options_are_checked_and_one_glob_string_is_one_glob(kb, notes):
    for bad, message in [({"include": [3]}, "include must be"), ({"exclude": None}, "exclude must be"),
                         ({"max_bytes": 0}, "max_bytes must be"), ({"max_bytes": "5MB"}, "max_bytes must be")]:
        with pytest.raises(InputError, match=message):
            kb.index(notes, **bad)
    assert counts(kb)[0] == 0  # nothing was indexed by a bad call
    report = kb.index(notes, include="work/**")  # not ["w", "o", "r", "k", ...]
    assert report.added == 1 and counts(kb)[0] == 1


@pytest.mark.parametrize("bad, message", [
    ({"mode": "fuzzy"}, "mode 'fuzzy' is not one of"), ({"k": 0}, "k must be a positive integer"),
    ({"k": "10"}, "k must be"), ({"per_doc": -1}, "per_doc must be"), ({"path": 3}, "path must be a glob"),
    ({"kinds": [None]}, "kinds must be names"), ({"since": [2024]}, "since must be"),
    ({"since": True}, "since must be"),
])
def test_search_checks_every_option_before_any_work(tmp_path, bad, message):
    # An empty index and a model that cannot be loaded: the bad option is still reported, not []
    with KnowledgeBase(tmp_path / "empty.db", model="nobody/no-such-model") as kb:
        with pytest.raises(InputError, match=message):
            kb.search("x", **bad)
        assert kb.search("x", mode="vector", kinds="md") == []  # valid options: nothing indexed yet


def test_model_or_dims_mismatch_is_a_clear_error_and_reembed_fixes_it(tmp_path, notes, tiny, tiny_path):
    db = tmp_path / "kb.db"
    with KnowledgeBase(db, model=tiny) as kb:
        kb.index(notes)
    with KnowledgeBase(db, model=tiny, dimensions=64) as kb:
        with pytest.raises(ModelMismatchError, match=r"dimensions: index has 128, requested 64.*--reembed"):
            kb.index(notes)
        report = kb.index(notes, reembed=True)
        assert report.added == 3 and kb.status()["dimensions"] == 64
        assert kb.search("login", k=1)[0].rel == "work/login.md"
    other = tiny_path.parent / "jina-v5-tiny-mlx"
    with KnowledgeBase(db, model=str(other)) as kb:
        with pytest.raises(ModelMismatchError, match="jina-v5-tiny-mlx"):
            kb.search("login")
        assert kb.search("login", mode="keyword")  # keyword search needs no model
    with KnowledgeBase(db) as kb:  # no model given: the one the index was built with
        assert kb.search("login", k=1)[0].rel == "work/login.md"
        assert kb.status()["dimensions"] == 64
    with KnowledgeBase(db, model=tiny) as kb:  # re-embedding without --dims: the model's full size again
        assert kb.index(notes, reembed=True).added == 3 and kb.status()["dimensions"] == 128


def test_add_and_remove_single_files(kb, notes):
    report = kb.add(notes / "work" / "login.md")
    assert (report.added, report.seen) == (1, 1)
    kb.add(notes / "code.py")
    assert counts(kb)[0] == 2
    assert kb.remove(notes / "work") == 1
    assert {r[0] for r in kb.store.conn.execute("SELECT rel FROM documents")} == {"code.py"}
    assert kb.remove(notes / "code.py") == 1 and counts(kb) == (0, 0, 0, 0)


def test_chunks_are_tokenized_once_and_embedded_from_those_ids(kb, notes, tiny, monkeypatch):
    """Each chunk is tokenized once, as the model sees it (by the chunker's final check, or with the
    stored-vector lookup when its length settled the check); the encoder gets those ids (the same
    the model would make from the text) instead of tokenizing again."""
    calls, tokenized = [], []
    encode, tokenize = tiny.encode, tiny.tokenize

    def spy(texts, **kwargs):
        calls.append((list(texts), kwargs.get("ids")))
        return encode(texts, **kwargs)

    def spy_tokenize(texts, tasks, **kwargs):
        tokenized.extend(texts)
        return tokenize(texts, tasks, **kwargs)

    monkeypatch.setattr(tiny, "encode", spy)
    monkeypatch.setattr(tiny, "tokenize", spy_tokenize)
    (notes / "long.md").write_text("# Long\n\n" + "word " * 150)  # 750 bytes: its check is counted
    kb.index(notes)
    indexed = [(texts, ids) for texts, ids in calls if ids is not None]
    assert sum(len(texts) for texts, _ in indexed) == counts(kb)[1]
    assert all(tokenized.count(text) == 1 for texts, _ in indexed for text in texts)
    for texts, ids in indexed:
        assert ids == tokenize(texts, ["retrieval.passage"] * len(texts), truncate=True)
