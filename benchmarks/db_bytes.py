"""DB bytes per chunk (issue 13): what one stored chunk costs on disk, table by table, and what the
vector layout costs to read back.

    python -m benchmarks.db_bytes [--chunks 20000] [--dims 384,1024]
    python -m benchmarks.db_bytes --chunks 0 --reads 100000      # the read costs alone
    python -m benchmarks.db_bytes --chunks 0 --keyword 100000    # filtered keyword search, by join

Bytes: `--chunks` chunks written through the knowledge base's own `Store.write_document` (10 per
document; embedded text = a `notes/docN.md > Intro` header + a docstring paragraph, as the indexer
makes them), random unit vectors; the file size after a checkpoint and VACUUM, divided by the
chunks, and each table's share (SQLite's dbstat: its pages, so page waste counts where it is).

Reads (--reads N, at 1024-d): the same N vectors in a schema-4 file (`chunk_codes` + `chunk_int8`,
bulk-inserted) and in that file migrated by this mlx-jina (the migration timed), then, interleaved
in one process (medians of --repeats): the in-process index rebuilt from SQLite (what a search does
after a write made the sidecar stale), the int8 rows of 1,000 random candidates (the rescoring read)
and the document ids of 10,000 random chunks (what a filtered keyword search joins).

Keyword (--keyword N, at 1024-d): N chunks through the write path, then 200 held-out paragraphs'
first 8 words (common terms dropped as search does) as filtered keyword queries: the FTS5 statement
of `search` joined, interleaved, to each chunk's document through the schema-5 index, the wide
schema-5 rows, `chunks`, and a copy of schema 4's `chunk_codes` (chunk_id, doc_id, bits).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.corpus import docstring_paragraphs
from mlx_jina.kb import keywords, vectors
from mlx_jina.kb.binary_index import BinaryIndex
from mlx_jina.kb.connect import connect
from mlx_jina.kb.schema import SCHEMA_VERSION, migrate
from mlx_jina.kb.search import COMMON_TERM_MIN, COMMON_TERM_SHARE, Filters, document_frequencies
from mlx_jina.kb.store import Binding, NewChunk, Store

PER_DOC = 10
CANDIDATES = 1000
FILTERED = 10_000


def unit_vectors(n: int, dims: int, seed: int = 0) -> np.ndarray:
    out = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def write_chunks(path: Path, texts: list[str], dims: int) -> Store:
    """The chunks through Store.write_document, one document of PER_DOC chunks per transaction."""
    store = Store(path)
    store.bind(Binding(model_id="bench", revision=None, quantization=None, dimensions=dims))
    bits, int8 = vectors.encode(unit_vectors(len(texts), dims))
    for d in range(0, len(texts), PER_DOC):
        rel = f"notes/doc{d // PER_DOC}.md"
        chunks = []
        for i in range(d, min(d + PER_DOC, len(texts))):
            text = f"{rel} > Intro\n\n{texts[i]}"
            chunks.append(NewChunk(i - d, "Intro", 1, 1, text, texts[i], hashlib.sha256(text.encode()).digest(),
                                   bits[i], int8[i]))
        store.write_document(path=f"/{rel}", root="/", rel=rel, kind="markdown", language=None,
                             content_hash=hashlib.sha256(rel.encode()).digest(), size=1, mtime=0.0, chunks=chunks)
    return store


def table_bytes(conn: object) -> dict[str, int]:
    """Bytes on disk per table, its indexes and FTS5 shadow tables folded into it."""
    rows = conn.execute("SELECT s.name, coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "  # type: ignore[attr-defined]
                        "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY s.name").fetchall()
    out: dict[str, int] = {}
    for _, table, size in rows:
        table = "chunks_fts" if table.startswith("chunks_fts") else table
        out[table] = out.get(table, 0) + size
    return out


def measure_bytes(texts: list[str], dims: int) -> tuple[int, dict[str, int], int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kb.db"
        store = write_chunks(path, texts, dims)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.conn.execute("VACUUM")
        tables = table_bytes(store.conn)
        page = store.conn.execute("PRAGMA page_size").fetchone()[0]
        store.close()
        return path.stat().st_size, tables, page


def schema4_file(path: Path, n: int, dims: int) -> None:
    """Only the vector tables, as mlx-jina wrote them at schema 4 (chunk ids 1..n, 10 per document)."""
    conn, _ = connect(path)
    migrate(conn, until=4)
    bits, int8 = vectors.encode(unit_vectors(n, dims))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO chunk_codes VALUES (?, ?, ?)", ((i + 1, i // PER_DOC, b) for i, b in enumerate(bits)))
    conn.executemany("INSERT INTO chunk_int8 VALUES (?, ?)", ((i + 1, v) for i, v in enumerate(int8)))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def ids_sql(ids: np.ndarray) -> str:
    return ",".join(str(int(i)) for i in ids)


Read = Callable[[np.ndarray, np.ndarray], object]  # (candidate ids, sorted ids of filtered chunks) -> rows


def layout_reads(conn: object, codes: str, int8: str, docs: str) -> dict[str, Read]:
    """The three reads as the product's SQL makes them, over the tables of one layout."""
    q = conn.execute  # type: ignore[attr-defined]
    return {
        "index rebuild": lambda c, f: BinaryIndex.from_rows(
            "", q(f"SELECT chunk_id, doc_id, bits FROM {codes} ORDER BY chunk_id").fetchall()),
        f"int8 of {CANDIDATES:,} candidates": lambda c, f: q(
            f"SELECT chunk_id, int8 FROM {int8} WHERE chunk_id IN ({ids_sql(c)})").fetchall(),
        f"doc ids of {FILTERED:,} chunks": lambda c, f: q(
            f"SELECT chunk_id, doc_id FROM {docs} WHERE chunk_id IN ({ids_sql(f)})").fetchall(),
    }


def measure_reads(n: int, dims: int, repeats: int) -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp) / "v4.db", Path(tmp) / "v5.db"
        schema4_file(old, n, dims)
        shutil.copy(old, new)
        start = time.perf_counter()
        store = Store(new)
        migrated = time.perf_counter() - start
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn, _ = connect(old)
        layouts = {"schema 4": layout_reads(conn, "chunk_codes", "chunk_int8", "chunk_codes"),
                   f"schema {SCHEMA_VERSION}": layout_reads(store.conn, "chunk_vectors", "chunk_vectors",
                                                            "chunk_vectors INDEXED BY chunk_vectors_doc"),
                   f"schema {SCHEMA_VERSION}, doc ids from the rows": layout_reads(
                       store.conn, "chunk_vectors", "chunk_vectors", "chunk_vectors NOT INDEXED")}
        sizes = {"schema 4": table_bytes(conn), f"schema {SCHEMA_VERSION}": table_bytes(store.conn)}
        rng = np.random.default_rng(1)
        seconds: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeats):
            cands = rng.choice(np.arange(1, n + 1), CANDIDATES, replace=False)
            filtered = np.sort(rng.choice(np.arange(1, n + 1), min(FILTERED, n), replace=False))
            for layout, reads in layouts.items():  # interleaved: one of each, then the next repeat
                for name, read in reads.items():
                    start = time.perf_counter()
                    read(cands, filtered)
                    seconds.setdefault((layout, name), []).append(time.perf_counter() - start)
        conn.close()
        store.close()
    vector_tables = {layout: f"{sum(v for k, v in s.items() if k.startswith('chunk_')) / n:,.0f} B/chunk"
                     for layout, s in sizes.items()}
    names = list(next(iter(layouts.values())))
    lines.append(f"| {n:,} chunks x {dims}-d, median of {repeats} (ms) | " + " | ".join(names)
                 + " | vector tables on disk |")
    lines.append("|---" * (len(names) + 2) + "|")
    for layout in layouts:
        cells = [f"{statistics.median(seconds[(layout, name)]) * 1e3:.1f}" for name in names]
        lines.append(f"| {layout} | " + " | ".join(cells) + f" | {vector_tables.get(layout, '(the same file)')} |")
    lines.append(f"\nmigration 4 -> {SCHEMA_VERSION} of {n:,} chunks: {migrated:.2f} s")
    return lines


KEYWORD_JOINS = {  # the document of each FTS5 match, by way of:
    f"schema {SCHEMA_VERSION}: (chunk_id, doc_id) index (the product)":
        "chunk_vectors v INDEXED BY chunk_vectors_doc ON v.chunk_id = f.rowid JOIN documents d ON d.id = v.doc_id",
    f"schema {SCHEMA_VERSION}: the wide rows": "chunk_vectors v NOT INDEXED ON v.chunk_id = f.rowid "
                                               "JOIN documents d ON d.id = v.doc_id",
    "chunks": "chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id",
    "schema 4: chunk_codes": "bench_codes k ON k.chunk_id = f.rowid JOIN documents d ON d.id = k.doc_id",
}
FILTERS = {"path notes/doc1* (11% of files)": Filters(path="notes/doc1*"),
           "kind md (every file)": Filters(kinds=("md",))}


def informative(conn: object, text: str) -> list[str]:
    """The query's terms less the common ones, as search does (the rarest if all are common)."""
    terms = keywords.query_terms(" ".join(text.split()[:8]))
    total = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]  # type: ignore[attr-defined]
    limit = int(max(COMMON_TERM_SHARE * total, COMMON_TERM_MIN))
    counts = document_frequencies(conn, terms)
    return [t for t in terms if 0 < counts[t] <= limit] or [min(terms, key=counts.__getitem__)] if terms else []


def measure_keyword(n: int) -> list[str]:
    texts = docstring_paragraphs(n + 500)
    queries = texts[-200:]
    with tempfile.TemporaryDirectory() as tmp:
        store = write_chunks(Path(tmp) / "kb.db", texts[:n], 1024)
        conn = store.conn
        conn.execute("CREATE TABLE bench_codes (chunk_id INTEGER PRIMARY KEY, doc_id INTEGER NOT NULL, bits BLOB)")
        conn.execute("INSERT INTO bench_codes SELECT chunk_id, doc_id, bits FROM chunk_vectors")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        lines = [f"| {n:,} chunks x 1024-d, filtered keyword query p50 (ms) | " + " | ".join(FILTERS) + " |",
                 "|---" * (len(FILTERS) + 1) + "|"]
        seconds: dict[tuple[str, str], list[float]] = {}
        for query in queries:
            match = " OR ".join(informative(conn, query))
            if not match:
                continue
            for label, filters in FILTERS.items():
                where, params = filters.sql()
                results = []
                for name, join in KEYWORD_JOINS.items():  # interleaved
                    start = time.perf_counter()
                    results.append(conn.execute(f"SELECT f.rowid, bm25(chunks_fts) AS s FROM chunks_fts f JOIN {join} "
                                                f"WHERE chunks_fts MATCH ? AND {where} ORDER BY s LIMIT 200",
                                                (match, *params)).fetchall())
                    seconds.setdefault((name, label), []).append(time.perf_counter() - start)
                assert all(r == results[0] for r in results), "every join must find the same hits"
        store.close()
    for name in KEYWORD_JOINS:
        lines.append(f"| {name} | " + " | ".join(f"{statistics.median(seconds[(name, label)]) * 1e3:.1f}"
                                               for label in FILTERS) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000, help="chunks for the bytes table (0: skip it)")
    parser.add_argument("--dims", default="384,1024")
    parser.add_argument("--reads", type=int, default=0, help="chunks for the read-cost table (0: skip it)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keyword", type=int, default=0, help="chunks for the keyword-join table (0: skip it)")
    opts = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}\n")
    if opts.chunks:
        texts = docstring_paragraphs(opts.chunks + 500)[: opts.chunks]
        for dims in (int(d) for d in opts.dims.split(",")):
            size, tables, page = measure_bytes(texts, dims)
            by_size = sorted(tables.items(), key=lambda t: -t[1])
            shares = ", ".join(f"{name} {b / opts.chunks:,.0f}" for name, b in by_size)
            print(f"{dims}-d, {opts.chunks:,} chunks, {page // 1024} KiB pages: **{size / opts.chunks:,.0f} B/chunk** "
                  f"({shares})")
        print()
    if opts.reads:
        print("\n".join(measure_reads(opts.reads, 1024, opts.repeats)) + "\n")
    if opts.keyword:
        print("\n".join(measure_keyword(opts.keyword)))


if __name__ == "__main__":
    main()
