"""The database layout, versioned with PRAGMA user_version; MIGRATIONS[i] takes version i to i+1.

Tables: meta (model binding, last index, `vectors_token`), documents, chunks (a chunk keeps its
context `header` and its `body`: the embedded text is header + body), chunks_fts (contentless FTS5
over chunk headings and bodies as `keywords.index_text` rewrites them, kept in step by triggers
that call it) and chunk_vectors (one row per chunk: its document, its sign bits, what the
in-process Hamming index is built from, and its int8 rescoring vector, read by rowid). The vectors
are sqlite-vec blobs in a plain table, so the database stays searchable with plain SQL through
sqlite-vec's functions (README); a plain table replaced a vec0 table whose full scan (needed to
build the index) ran at ~130 us/row and whose IN lookups of 1,000 ids took 8x a plain table's. Hashes
are sha256 digests as 32-byte blobs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from mlx_jina.errors import SchemaError
from mlx_jina.kb.keywords import SQL_FUNCTION, TOKENIZE

_KEYWORDS = f"{SQL_FUNCTION}(new.heading), {SQL_FUNCTION}(new.body)"

#: A new random value on every write that changes chunk vectors (see binary_index.py).
NEW_VECTORS_TOKEN = ("INSERT INTO meta(key, value) VALUES ('vectors_token', lower(hex(randomblob(16)))) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value")


def _plain_vector_tables(conn: Any) -> None:
    """2 -> 3: chunk vectors move out of the vec0 table into chunk_codes / chunk_int8, unchanged."""
    conn.execute("""CREATE TABLE chunk_codes (
        chunk_id INTEGER PRIMARY KEY,           -- chunks.id
        doc_id INTEGER NOT NULL,                -- chunks.doc_id (filters are masks over documents)
        bits BLOB NOT NULL                      -- sign bits, LSB first: vec_bit(bits)
    )""")
    conn.execute("""CREATE TABLE chunk_int8 (
        chunk_id INTEGER PRIMARY KEY,           -- chunks.id
        int8 BLOB NOT NULL                      -- per-vector scaled int8: vec_int8(int8)
    )""")
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'chunks_vec'").fetchone():
        conn.execute("INSERT INTO chunk_codes(chunk_id, doc_id, bits) SELECT v.chunk_id, c.doc_id, v.embedding "
                     "FROM chunks_vec v JOIN chunks c ON c.id = v.chunk_id")
        conn.execute("INSERT INTO chunk_int8(chunk_id, int8) SELECT chunk_id, rescore FROM chunks_vec")
        conn.execute("DROP TABLE chunks_vec")
    conn.execute(NEW_VECTORS_TOKEN)


def _unhex(value: Any) -> Any:
    """A hex digest as its bytes; anything else (not written by mlx-jina) unchanged."""
    try:
        return bytes.fromhex(value) if isinstance(value, str) and len(value) == 64 else value
    except ValueError:
        return value


def _lean_chunks(conn: Any) -> None:
    """3 -> 4: each chunk's text stored once (the embedded text was the header plus a second copy of
    the body; now `header` alone) and sha256 hashes as 32-byte blobs instead of 64 hex characters."""
    conn.create_function("mlx_jina_unhex", 1, _unhex, deterministic=True)
    conn.execute("ALTER TABLE chunks ADD COLUMN header TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE chunks SET header = CASE WHEN substr(text, length(text) - length(body) + 1) = body "
                 "THEN substr(text, 1, length(text) - length(body)) ELSE text END, "
                 "text_hash = mlx_jina_unhex(text_hash)")
    conn.execute("ALTER TABLE chunks DROP COLUMN text")
    conn.execute("UPDATE documents SET content_hash = mlx_jina_unhex(content_hash)")


def _one_vector_row(conn: Any) -> None:
    """4 -> 5: a chunk's bits and int8 vector in one row of chunk_vectors, not one row in each of
    chunk_codes and chunk_int8: at 1024-d a ~1,160-byte row packs 7 to an 8 KiB page where the
    1,030-byte int8 rows left ~930 B of each page unused, and the second table's keys go
    (benchmarks/db_bytes.py: 1,756 -> 1,628 B/chunk). Seven rows fill 8,183 of a page's 8,184 bytes
    while chunk ids stay below 2^21 (a 3-byte varint); past ~2M chunks six fit."""
    conn.execute("""CREATE TABLE chunk_vectors (
        chunk_id INTEGER PRIMARY KEY,           -- chunks.id
        doc_id INTEGER NOT NULL,                -- chunks.doc_id (filters are masks over documents)
        bits BLOB NOT NULL,                     -- sign bits, LSB first: vec_bit(bits)
        int8 BLOB NOT NULL                      -- per-vector scaled int8: vec_int8(int8)
    )""")
    conn.execute("INSERT INTO chunk_vectors(chunk_id, doc_id, bits, int8) SELECT k.chunk_id, k.doc_id, k.bits, "
                 "i.int8 FROM chunk_codes k JOIN chunk_int8 i USING (chunk_id) ORDER BY k.chunk_id")
    # each chunk's document in a narrow b-tree, for 14 B/chunk: a filtered keyword search joins it
    # per match (benchmarks/db_bytes.py --keyword, 100k: 8.2 ms; the ~1.2 KB rows: 10.6; schema 4: 9.0)
    conn.execute("CREATE INDEX chunk_vectors_doc ON chunk_vectors(chunk_id, doc_id)")
    conn.execute("DROP TABLE chunk_codes")
    conn.execute("DROP TABLE chunk_int8")
    conn.execute(NEW_VECTORS_TOKEN)


Migration = tuple[str, ...] | Callable[[Any], None]

MIGRATIONS: tuple[Migration, ...] = (
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
    _plain_vector_tables,  # 2 -> 3
    _lean_chunks,  # 3 -> 4
    _one_vector_row,  # 4 -> 5
)
SCHEMA_VERSION = len(MIGRATIONS)
# What a migration step with work to do tells the user, by the version it reaches.
NOTICES = {
    2: "rebuilding the keyword index of {chunks} chunks from their stored text, so that Chinese, Japanese, "
       "Korean and Thai words can be found (no re-embedding; this runs once)",
    3: "moving the vectors of {chunks} chunks out of the sqlite-vec vec0 table into plain tables "
       "(no re-embedding; this runs once)",
    4: "storing the text of {chunks} chunks once instead of twice (no re-embedding; this runs once)",
    5: "storing the vectors of {chunks} chunks in one table instead of two (no re-embedding; this runs once)",
}


def migrate(conn: Any, *, readonly: bool = False, until: int = SCHEMA_VERSION) -> int:
    """Bring the schema to SCHEMA_VERSION, each step in its own transaction; returns the version.
    readonly: only check (a read-only file cannot be upgraded, or created). until: stop at that
    older version (tests and benchmarks build the files earlier mlx-jinas wrote)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"this database has schema version {version}; this mlx-jina knows up to {SCHEMA_VERSION}. "
            "Upgrade mlx-jina to open it."
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0]:
        raise SchemaError("not a mlx-jina database (an SQLite file with other tables): pass another --db")
    if readonly and version < SCHEMA_VERSION:
        raise SchemaError("empty: not a mlx-jina database yet; build it with `mlx-jina index FOLDER`" if version == 0
                          else f"schema version {version} is older than this mlx-jina's {SCHEMA_VERSION}; it is "
                          "upgraded when opened with write access (e.g. by `mlx-jina index FOLDER`)")
    while version < until:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read under the write lock: another process may have migrated meanwhile
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < until:
                _notify(conn, version + 1)
                step = MIGRATIONS[version]
                if callable(step):
                    step(conn)
                else:
                    for statement in step:
                        conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite has already rolled back after SQLITE_FULL and the like
                conn.execute("ROLLBACK")
            raise
    return version


def _notify(conn: Any, version: int) -> None:
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0] if version > 1 else 0
    if version in NOTICES and chunks:
        print(f"mlx-jina: {NOTICES[version].format(chunks=f'{chunks:,}')}", file=sys.stderr)

