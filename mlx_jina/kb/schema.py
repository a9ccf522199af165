"""The database layout, versioned with PRAGMA user_version; MIGRATIONS[i] takes version i to i+1.

Tables: meta (model binding, last index), documents, chunks, chunks_fts (contentless FTS5 over
chunk headings and bodies as `keywords.index_text` rewrites them, kept in step by triggers that
call it) and chunks_vec (a sqlite-vec vec0 table created once the
embedding size is known: see `create_vector_table`).
"""

from __future__ import annotations

import sys
from typing import Any

from mlx_jina.errors import InputError, SchemaError
from mlx_jina.kb.keywords import SQL_FUNCTION, TOKENIZE

_KEYWORDS = f"{SQL_FUNCTION}(new.heading), {SQL_FUNCTION}(new.body)"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 0 -> 1: first layout
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)",
        """CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,          -- absolute
            root TEXT NOT NULL,                 -- the folder it was indexed under
            rel TEXT NOT NULL,                  -- POSIX path relative to root (what --path globs match)
            kind TEXT NOT NULL,                 -- markdown | text | code | html | pdf
            language TEXT,
            content_hash TEXT NOT NULL,         -- sha256 of the file's bytes
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            indexed_at REAL NOT NULL
        )""",
        "CREATE INDEX documents_hash ON documents(content_hash)",
        """CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            heading TEXT NOT NULL,
            start_line INTEGER NOT NULL,
            end_line INTEGER NOT NULL,
            text TEXT NOT NULL,                 -- what was embedded: context header + body
            body TEXT NOT NULL,                 -- the file's own lines (snippets, FTS)
            text_hash TEXT NOT NULL             -- sha256 of text: equal text reuses the stored vectors
        )""",
        "CREATE INDEX chunks_doc ON chunks(doc_id)",
        "CREATE INDEX chunks_text_hash ON chunks(text_hash)",
        """CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, body, content='chunks', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2')""",
        """CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, heading, body) VALUES (new.id, new.heading, new.body);
        END""",
        """CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, heading, body) VALUES ('delete', old.id, old.heading, old.body);
        END""",
    ),
    (  # 1 -> 2: keywords in every script (CJK and Thai bigrams), rebuilt from the stored chunk text
        "DROP TRIGGER chunks_fts_insert",
        "DROP TRIGGER chunks_fts_delete",
        "DROP TABLE chunks_fts",
        f"CREATE VIRTUAL TABLE chunks_fts USING fts5(heading, body, content='', tokenize='{TOKENIZE}')",
        f"""CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, heading, body) VALUES (new.id, {_KEYWORDS});
        END""",
        f"""CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            INSERT INTO chunks_fts(chunks_fts, rowid, heading, body)
            VALUES ('delete', old.id, {_KEYWORDS.replace("new.", "old.")});
        END""",
        f"INSERT INTO chunks_fts(rowid, heading, body) SELECT id, {SQL_FUNCTION}(heading), {SQL_FUNCTION}(body) "
        "FROM chunks",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
# What a migration step with work to do tells the user, by the version it reaches.
NOTICES = {
    2: "rebuilding the keyword index of {chunks} chunks from their stored text, so that Chinese, Japanese, "
       "Korean and Thai words can be found (no re-embedding; this runs once)",
}


def migrate(conn: Any) -> int:
    """Bring the schema to SCHEMA_VERSION, each step in its own transaction; returns the version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"this database has schema version {version}; this mlx-jina knows up to {SCHEMA_VERSION}. "
            "Upgrade mlx-jina to open it."
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]:
        raise SchemaError("this SQLite file has tables but is not an mlx-jina knowledge base")
    while version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read under the write lock: another process may have migrated meanwhile
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                _notify(conn, version + 1)
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


def _notify(conn: Any, version: int) -> None:
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0] if version > 1 else 0
    if version in NOTICES and chunks:
        print(f"mlx-jina: {NOTICES[version].format(chunks=f'{chunks:,}')}", file=sys.stderr)


def create_vector_table(conn: Any, dimensions: int) -> None:
    """vec0 table: `embedding` bit[D] for the coarse Hamming KNN, `+rescore` (an auxiliary column,
    returned with each KNN row at no extra lookup) holds the int8 vector used to rescore."""
    if dimensions % 8:
        raise InputError(f"dimensions must be a multiple of 8, got {dimensions}")
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vec USING vec0("
        f"chunk_id INTEGER PRIMARY KEY, embedding bit[{dimensions}], +rescore BLOB)"
    )
