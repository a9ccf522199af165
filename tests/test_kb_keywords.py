"""Keyword search in every script, end to end through KnowledgeBase with real multilingual notes
(the tiny model's vectors mean nothing, so relevance is checked on the keyword side), plus the
1 -> 2 schema migration that rebuilds the keyword index of an existing database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from mlx_jina.errors import SchemaError
from mlx_jina.kb import KnowledgeBase, keywords, vectors
from mlx_jina.kb import schema as schema_module
from mlx_jina.kb.connect import connect
from mlx_jina.kb.schema import MIGRATIONS, SCHEMA_VERSION
from mlx_jina.kb.search import search
from mlx_jina.kb.store import Binding, NewChunk, Store

NOTES = {
    "zh-migration.md": "# 数据库迁移\n\n上周我们把用户数据库从MySQL迁移到了PostgreSQL，迁移过程中发现登录错误："
                       "旧的会话表没有同步。解决办法是重新生成会话令牌。\n",
    "zh-design.md": "# 前端改版\n\n登录页面的样式更新了。另外发现一个错误："
                    "首页的图片无法加载，需要检查缓存配置。\n",
    "ja-trip.md": "# 大阪出張\n\n来週の大阪出張：新幹線の予約は金曜日までに済ませること。"
                  "ホテルは駅の近くに取った。\n",
    "ko-payment.md": "# 결제 오류\n\n결제를 완료한 후 영수증을 이메일로 보내야 합니다. "
                     "카드 결제가 실패하면 다시 시도하세요.\n",
    "mixed-deploy.md": "# 部署说明\n\n用Docker Compose启动服务，然后运行kubectl apply。"
                       "如果遇到OOMKilled，就增加内存限制。\n",
    "de-heating.md": "# Heizung\n\nDie Heizung im Keller macht seltsame Geräusche. Der Techniker kommt am Dienstag, "
                    "um die Wärmepumpe zu überprüfen.\n",
    "ru-meeting.md": "# Встреча\n\nВстреча с командой перенесена на четверг. Нужно подготовить отчёт о продажах "
                     "за квартал.\n",
    "ar-budget.md": "# الميزانية\n\nاجتماع الفريق يوم الخميس لمناقشة الميزانية السنوية وخطة التوظيف.\n",
    "th-bank.md": "# ธุระ\n\nพรุ่งนี้ต้องไปธนาคารเพื่อเปิดบัญชีใหม่และขอบัตรเครดิต\n",
    "en-login.md": "# Login service\n\nWe fixed the login bug by renewing the session cookie on every request.\n",
}

# (query as a user types it, the note that must rank first in keyword mode)
QUERIES = [
    ("登录错误", "zh-migration.md"),
    ("迁移", "zh-migration.md"),
    ("PostgreSQL", "zh-migration.md"),
    ("会话令牌", "zh-migration.md"),
    ("缓存", "zh-design.md"),
    ("新幹線", "ja-trip.md"),
    ("予約", "ja-trip.md"),
    ("大阪", "ja-trip.md"),
    ("결제", "ko-payment.md"),
    ("영수증", "ko-payment.md"),
    ("Docker", "mixed-deploy.md"),
    ("kubectl", "mixed-deploy.md"),
    ("OOMKilled 内存", "mixed-deploy.md"),
    ("Wärmepumpe", "de-heating.md"),
    ("warmepumpe", "de-heating.md"),  # diacritics folded, as before
    ("отчёт о продажах", "ru-meeting.md"),
    ("четверг", "ru-meeting.md"),
    ("الميزانية", "ar-budget.md"),
    ("ธนาคาร", "th-bank.md"),
    ("บัญชี", "th-bank.md"),
    ("renewed cookies", "en-login.md"),  # porter stemming, as before
]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, tiny) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (root / name).write_text(text, encoding="utf-8")
    with KnowledgeBase(root.parent / "kb.db", model=tiny) as kb:
        kb.index(root)
        yield kb


@pytest.mark.parametrize(("query", "note"), QUERIES)
def test_the_right_note_ranks_first_in_keyword_mode_and_is_found_in_hybrid(kb, query, note):
    hits = kb.search(query, mode="keyword", k=3)
    assert hits and hits[0].rel == note, [h.rel for h in hits]
    hybrid = kb.search(query, mode="hybrid", k=3)
    found = [h for h in hybrid if h.rel == note]
    assert found and found[0].keyword_score is not None, [h.rel for h in hybrid]


def test_the_whole_word_ranks_above_its_characters_apart(kb):
    # zh-design.md has 登录 and 错误 but not together: a 4-character word must match as a phrase
    assert [h.rel for h in kb.search("登录错误", mode="keyword")] == ["zh-migration.md"]
    # a longer run is several words typed without spaces: both notes match, the whole word first
    ranked = [h.rel for h in kb.search("发现登录错误", mode="keyword")]
    assert ranked[:2] == ["zh-migration.md", "zh-design.md"]


def test_one_character_finds_it_anywhere_in_a_run(kb):
    assert {h.rel for h in kb.search("库", mode="keyword")} == {"zh-migration.md"}  # last of 数据库
    assert {h.rel for h in kb.search("庫", mode="keyword")} == set()


@pytest.mark.parametrize("query", ['登录"错误', "迁移 AND (", "*予約", "NEAR(결제", '"', "^迁移-", "登录:错误",
                                   "col:新幹線 OR", "ธนาคาร*)", "'数据库'", "　全角スペース　"])
def test_fts5_syntax_characters_in_cjk_queries_never_raise(kb, query):
    for mode in ("keyword", "hybrid"):
        kb.search(query, mode=mode)


def test_snippets_show_the_match_with_its_terms_marked(kb, tmp_path):
    filler = "Background notes that have nothing to do with the problem.\n" * 20
    body = f"{filler}\n最后我们找到了登录错误的原因：时钟不同步。\n\n{filler}"
    store = Store(tmp_path / "long.db")
    store.bind(Binding("m", None, None, 64))
    bits, int8 = vectors.encode(np.eye(1, 64, dtype=np.float32))
    store.write_document(path="/n/long.md", root="/n", rel="long.md", kind="markdown", language=None,
                         content_hash="h", size=1, mtime=1.0,
                         chunks=[NewChunk(0, "", 1, 42, body, body, "t", bits[0], int8[0])])
    hit = search(store, "登录错误", None, mode="keyword")[0]
    store.close()
    assert hit.snippet.startswith("… 最后") and "时钟不同步" in hit.snippet and len(hit.snippet) < 400
    assert [hit.snippet[s:e] for s, e in hit.highlights] == ["登录错误"]
    assert hit.marked().startswith("… 最后我们找到了[登录错误]的原因")
    for query, marked in [("warmepumpe", "Wärmepumpe"), ("renewed cookies", "renewing"), ("결제", "결제"),
                          ("PostgreSQL", "PostgreSQL"), ("ธนาคาร", "ธนาคาร"), ("отчёт", "отчёт")]:
        hit = kb.search(query, mode="keyword")[0]
        assert marked in [hit.snippet[s:e] for s, e in hit.highlights], (query, hit.snippet, hit.highlights)
    vector_only = kb.search("PostgreSQL", mode="vector", k=10)
    assert all(h.snippet for h in vector_only)


def test_text_outside_cjk_and_thai_is_indexed_unchanged():
    for text in ["The login bug, fixed.", "Die Wärmepumpe", "Отчёт", "الميزانية", "Ελληνικά", ""]:
        assert keywords.index_text(text) == text
    assert keywords.index_text("迁移到了PostgreSQL，完成").split() == ["迁移", "移到", "到了", "了", "PostgreSQL,",
                                                                   "完成", "成"]


def _v1_database(path: Path, texts: list[str]) -> None:
    """A database as mlx-jina wrote it at schema version 1 (unicode61 over the raw chunk text)."""
    conn, _ = connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("CREATE VIRTUAL TABLE chunks_vec USING vec0(chunk_id INTEGER PRIMARY KEY, embedding bit[64], "
                 "+rescore BLOB)")
    conn.execute("INSERT INTO documents VALUES (1, '/n/a.md', '/n', 'a.md', 'markdown', NULL, 'h', 1, 1.0, 1.0)")
    bits, int8 = vectors.encode(np.eye(len(texts), 64, dtype=np.float32))
    for i, text in enumerate(texts):
        conn.execute("INSERT INTO chunks VALUES (?, 1, ?, '', 1, 1, ?, ?, ?)",
                     (i + 1, i, f"a.md\n\n{text}", text, hashlib.sha256(f"a.md\n\n{text}".encode()).hexdigest()))
        conn.execute("INSERT INTO chunks_vec VALUES (?, vec_bit(?), ?)", (i + 1, bits[i], int8[i]))
    conn.close()


def test_migration_rebuilds_the_keyword_index_without_touching_vectors(tmp_path, capsys):
    db = tmp_path / "old.db"
    _v1_database(db, ["上周我们把用户数据库迁移到了PostgreSQL", "The login bug, fixed."])
    conn, _ = connect(db)
    assert conn.execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH '迁移'").fetchone()[0] == 0
    before = conn.execute("SELECT chunk_id, embedding, rescore FROM chunks_vec ORDER BY 1").fetchall()
    conn.close()

    store = Store(db)
    assert "rebuilding the keyword index of 2 chunks" in capsys.readouterr().err
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    moved = store.conn.execute("SELECT chunk_id, bits, int8 FROM chunk_vectors ORDER BY 1").fetchall()
    # schema 3: out of vec0 into plain tables, unchanged; schema 5: one row per chunk
    assert moved == before
    assert not store.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks_vec'").fetchone()
    texts = ["上周我们把用户数据库迁移到了PostgreSQL", "The login bug, fixed."]  # schema 4: text once, binary hashes
    assert store.conn.execute("SELECT header, body, text_hash FROM chunks ORDER BY id").fetchall() == [
        ("a.md\n\n", t, hashlib.sha256(f"a.md\n\n{t}".encode()).digest()) for t in texts]
    assert [h.chunk_id for h in search(store, "迁移", None, mode="keyword")] == [1]
    assert [h.chunk_id for h in search(store, "fixes", None, mode="keyword")] == [2]
    assert [h.chunk_id for h in search(store, "unused", np.eye(2, 64, dtype=np.float32)[1], k=1, mode="vector")] == [2]
    store.remove_document(1)
    store.conn.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 0)")
    assert store.conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == 0
    store.close()
    Store(db).close()
    assert capsys.readouterr().err == ""  # once


def test_an_older_mlx_jina_refuses_this_database_clearly(tmp_path, monkeypatch):
    Store(tmp_path / "kb.db").close()
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION - 1)
    with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION}.*Upgrade mlx-jina"):
        Store(tmp_path / "kb.db")


def test_cli_marks_the_matched_terms_and_json_gives_their_offsets(kb):
    from click.testing import CliRunner

    from mlx_jina.cli import main

    args = ["search", "新幹線", "--db", str(kb.db_path), "--mode", "keyword", "-k", "1"]
    shown = CliRunner().invoke(main, args, color=True)
    assert shown.exit_code == 0, shown.output
    assert "\x1b[33m\x1b[1m新幹線\x1b[0m" in shown.stdout
    plain = CliRunner().invoke(main, args)
    assert "来週の大阪出張：新幹線の予約" in plain.stdout and "\x1b" not in plain.stdout
    hit = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert [hit["snippet"][s:e] for s, e in hit["highlights"]] == ["新幹線"]


def test_the_fast_index_text_makes_the_same_tokens_as_the_snippet_mapping():
    texts = [*NOTES.values(), "ที่นี่ ่่ กรุงเทพ", "ＡＢＣ１２３：新幹線・予約ー", "x迁y移z", "\u0e48\u0e48", "한국어ㄱ"]
    for text in texts:
        pieces = " ".join(p.text for p in keywords.pieces(text))
        assert keywords.index_text(text).split() == pieces.split(), text
