"""Keyword index benchmark: schema 1 (FTS5 unicode61 over the raw chunk text) against schema 2
(`keywords.index_text`: CJK and Thai runs as bigrams, contentless FTS5), built side by side.

    python -m benchmarks.keywords [--chunks 100000] [--queries 200] [--corpus both] > keywords.md

Two corpora of the same size: the benchmarks' English docstring paragraphs (benchmarks/corpus.py)
and Chinese made of the system's real zh_CN gettext translations (/usr/share/locale/zh_CN and
vim's), ~12 random messages joined per chunk (the catalogues hold ~27k messages, so chunks reuse
them: label it a mixture). Both layouts are written through `Store.write_document` in alternating
documents of 10 chunks, so load on this shared machine hits both alike, and are queried
alternately (order flipped every query) with `search(mode="keyword")`: on schema 2 as it is
(highlighted snippets included), on schema 1 with the query terms and first-lines snippets that
search.py had before (`schema1_behaviour`). Vectors are synthetic
(keyword search ignores them; they cost both layouts the same). Reports FTS bytes per chunk
(dbstat), insert rate, keyword p50/p99, and the share of queries that find their source chunk.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from benchmarks.corpus import clustered, docstring_paragraphs
from mlx_jina.kb import keywords, vectors
from mlx_jina.kb.schema import MIGRATIONS
from mlx_jina.kb.search import search
from mlx_jina.kb.store import Binding, NewChunk, Store

DIMS = 384
PER_DOC = 10
K = 10
CATALOGUES = ("/usr/share/locale/zh_CN/LC_MESSAGES", "/usr/share/vim/vim90/lang/zh_CN.UTF-8/LC_MESSAGES")
_HAN_WORD = re.compile(r"[\u4e00-\u9fff]{2,}")
_WORD = re.compile(r"\w+")
_LATIN_WORD = re.compile(r"[A-Za-z]{4,}")


def mo_messages(path: Path) -> list[str]:
    """The translated strings of a GNU gettext .mo file (its documented binary layout)."""
    data = path.read_bytes()
    order = "<" if data[:4] == b"\xde\x12\x04\x95" else ">"
    _, count, _, translations = struct.unpack(order + "4I", data[4:20])
    out = []
    for i in range(1, count):  # entry 0 is the catalogue header
        length, offset = struct.unpack(order + "2I", data[translations + 8 * i:translations + 8 * i + 8])
        out += [s for s in data[offset:offset + length].decode("utf-8", "replace").split("\0") if s]
    return out


def chinese_chunks(n: int, seed: int = 0) -> list[str]:
    messages = sorted({" ".join(m.split()) for folder in CATALOGUES for p in sorted(Path(folder).glob("*.mo"))
                       for m in mo_messages(p) if _HAN_WORD.search(m)})
    if len(messages) < 1000:
        sys.exit(f"found only {len(messages)} zh_CN messages under {CATALOGUES}: install some translations")
    rng = np.random.default_rng(seed)
    return ["".join(messages[j] for j in rng.integers(0, len(messages), 12)) for _ in range(n)]


def schema1_fts(store: Store) -> None:
    """Put back schema 1's keyword index: unicode61 over the raw text, external content."""
    conn = store.conn
    conn.execute("DROP TRIGGER chunks_fts_insert")
    conn.execute("DROP TRIGGER chunks_fts_delete")
    conn.execute("DROP TABLE chunks_fts")
    first = MIGRATIONS[0]
    assert isinstance(first, tuple)
    for statement in first:
        if "chunks_fts" in statement:
            conn.execute(statement)


def schema1_terms(query: str) -> list[str]:
    """The MATCH terms of schema 1: each \\w+ word quoted (a CJK run is one word)."""
    return ['"' + w.replace('"', '""') + '"' for w in dict.fromkeys(_WORD.findall(query))]


@contextmanager
def schema1_behaviour() -> Iterator[None]:
    """`search()` as it ran before CJK support: schema 1's terms, snippets without highlights (the
    chunk's first lines). Everything else is today's search code, so the rows differ only in what
    this change did."""
    saved = keywords.query_terms, keywords.highlights
    keywords.query_terms = schema1_terms
    keywords.highlights = lambda module, terms, bodies: [[] for _ in bodies]
    try:
        yield
    finally:
        keywords.query_terms, keywords.highlights = saved


def build_both(folder: Path, texts: list[str]) -> dict[str, tuple[Store, float]]:
    """Both layouts, written document by document in alternation; (store, chunks/s) each."""
    stores = {"schema 1": Store(folder / "schema1.db"), "schema 2": Store(folder / "schema2.db")}
    schema1_fts(stores["schema 1"])
    bits, int8 = vectors.encode(clustered(np.random.default_rng(1), len(texts), DIMS))
    spent = dict.fromkeys(stores, 0.0)
    for store in stores.values():
        store.bind(Binding(model_id="bench", revision=None, quantization=None, dimensions=DIMS))
    for d in range(0, len(texts), PER_DOC):
        chunks = [NewChunk(i - d, "", 1, 1, texts[i], texts[i], hashlib.sha256(texts[i].encode()).digest(),
                           bits[i], int8[i]) for i in range(d, min(d + PER_DOC, len(texts)))]
        for name in (list(stores) if d % 20 else list(stores)[::-1]):
            start = time.perf_counter()
            stores[name].write_document(path=f"/bench/doc{d}.md", root="/bench", rel=f"doc{d}.md", kind="markdown",
                                        language=None, content_hash=str(d).encode(), size=1, mtime=0.0, chunks=chunks)
            spent[name] += time.perf_counter() - start
    for store in stores.values():
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {name: (store, len(texts) / spent[name]) for name, store in stores.items()}


def fts_bytes(store: Store) -> int:
    return store.conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'chunks_fts%'").fetchone()[0]


def queries(texts: list[str], n: int, pattern: re.Pattern[str], words: int, seed: int = 2) -> list[tuple[str, int]]:
    """(query, source chunk id): `words` words of a random chunk, as a user recalls a note."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, int]] = []
    while len(out) < n:
        i = int(rng.integers(0, len(texts)))
        found = pattern.findall(texts[i])
        if len(found) >= words:
            picks = sorted(rng.choice(len(found), words, replace=False))
            chosen = [found[j] for j in picks]
            if pattern is _HAN_WORD:  # a 2-4 character word out of a run, as typed
                chosen = [w[s:s + int(rng.integers(2, 5))] for w in chosen for s in [int(rng.integers(0, len(w) - 1))]]
            out.append((" ".join(chosen), i + 1))
    return out


def measure(stores: dict[str, tuple[Store, float]], qs: list[tuple[str, int]]) -> dict[str, tuple[float, float, float]]:
    """Per layout: p50 ms, p99 ms, share of queries whose source chunk is in the top K."""
    seconds: dict[str, list[float]] = {name: [] for name in stores}
    found: dict[str, int] = dict.fromkeys(stores, 0)
    for q, (query, source) in enumerate(qs):
        for name in (list(stores) if q % 2 else list(stores)[::-1]):
            store = stores[name][0]
            with schema1_behaviour() if name == "schema 1" else nullcontext():
                start = time.perf_counter()
                ids = [h.chunk_id for h in search(store, query, None, k=K, mode="keyword", per_doc=K)]
                seconds[name].append(time.perf_counter() - start)
            found[name] += source in ids
    return {name: (float(np.percentile(np.array(s) * 1e3, 50)), float(np.percentile(np.array(s) * 1e3, 99)),
                   found[name] / len(qs)) for name, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--corpus", choices=["both", "english", "chinese"], default="both")
    args = parser.parse_args()
    corpora = {}
    if args.corpus in ("both", "english"):
        corpora["English (docstrings)"] = (docstring_paragraphs(args.chunks + 500)[:args.chunks], _LATIN_WORD)
    if args.corpus in ("both", "chinese"):
        corpora["Chinese (zh_CN gettext mixture)"] = (chinese_chunks(args.chunks), _HAN_WORD)
    print(f"## Keyword index, {args.chunks:,} chunks: schema 1 (unicode61) vs schema 2 (CJK bigrams)\n")
    for corpus, (texts, pattern) in corpora.items():
        with tempfile.TemporaryDirectory() as tmp:
            stores = build_both(Path(tmp), texts)
            print(f"### {corpus}\n")
            print("| layout | FTS bytes/chunk | insert chunks/s |")
            print("|---|---|---|")
            for name, (store, rate) in stores.items():
                print(f"| {name} | {fts_bytes(store) / len(texts):,.0f} | {rate:,.0f} |")
            print(f"\n| keyword search, k={K} ({args.queries} queries each) | layout | p50 / p99 ms "
                  f"| source chunk in top {K} |")
            print("|---|---|---|---|")
            for words in (1, 3):
                for name, (p50, p99, share) in measure(stores, queries(texts, args.queries, pattern, words)).items():
                    print(f"| {words}-word queries | {name} | {p50:.2f} / {p99:.2f} | {share:.0%} |")
            print()
            for store, _ in stores.values():
                store.close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
