"""Keyword search in every script: the text FTS5 indexes, the MATCH terms of a query, and snippets.

FTS5's unicode61 tokenizer keeps a run of Chinese, Japanese, Korean or Thai letters as one token
(`上周我们把用户数据库从MySQL迁移到了PostgreSQL` is two tokens), so no word inside it can be
found. As Lucene's CJKAnalyzer does, `index_text` rewrites each such run as its overlapping
character bigrams plus its last character (`登录错误` -> `登录 录错 错误 误`) and leaves all other
text as it is, so porter + unicode61 treat Latin, Cyrillic, Greek, Arabic... exactly as before.
`query_terms` rewrites a query the same way: a CJK word becomes the phrase of its bigrams
(adjacent, in order), one character a prefix query that finds it anywhere in a run.

The FTS5 table is contentless and its triggers call `index_text` (registered on every connection
by `register`); FTS5 deletes a row by tokenizing the same call's output again, so for a given input
the tokens must never change without a schema migration that rebuilds the index. That is why the
scripts are explicit code-point ranges, not Python's (versioned) Unicode database.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

TOKENIZE = "porter unicode61 remove_diacritics 2"  # FTS5's tokenizer for our rewritten text
SQL_FUNCTION = "mlx_jina_keyword_text"  # the name the schema's triggers call `index_text` by
WORD_CHARS = 4  # a CJK run of up to this many characters is one word: matched only as a phrase
SNIPPET_CHARS = 300

_HAN = "\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_KANA = "\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL = "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7a3\ud7b0-\ud7fb"
_THAI_LETTERS = "\u0e01-\u0e30\u0e32\u0e33\u0e40-\u0e45"
_THAI_MARKS = "\u0e31\u0e34-\u0e3a\u0e47-\u0e4e"  # vowel and tone marks: unicode61 splits or drops them
_FULLWIDTH = "\uff01-\uff5e"  # ！..～, folded to ASCII (Lucene's CJKWidthFilter)
_RUN = re.compile(f"[{_HAN}{_KANA}{_HANGUL}]+|[{_THAI_LETTERS}{_THAI_MARKS}]+")
_SPECIAL = re.compile(f"[{_HAN}{_KANA}{_HANGUL}{_THAI_LETTERS}{_THAI_MARKS}{_FULLWIDTH}]")
_IS_THAI_MARK = re.compile(f"[{_THAI_MARKS}]")
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_WORD = re.compile(r"\w+", re.UNICODE)
_MARK_OPEN, _MARK_CLOSE = "\ufdd0", "\ufdd1"  # noncharacters: never part of a note's text
_THREAD = threading.local()


class Piece(NamedTuple):
    """A span of the source text and what FTS5 indexes for it: the text itself (`run` False) or
    one bigram / last character of a CJK or Thai run."""

    text: str
    start: int
    end: int
    run: bool


def pieces(text: str) -> list[Piece]:
    """`text` as FTS5 indexes it, piece by piece, each with the source span it stands for (what
    snippets need to map matches back onto the note's own text)."""
    if not _SPECIAL.search(text):
        return [Piece(text, 0, len(text), False)]
    text = text.translate(_FOLD)  # one code point for one: offsets stay valid
    out: list[Piece] = []
    pos = 0
    for match in _RUN.finditer(text):
        start, run = match.start(), match.group()
        if start > pos:
            out.append(Piece(text[pos:start], pos, start, False))
        pos = match.end()
        if _IS_THAI_MARK.search(run):  # bigrams of base letters; a letter's marks belong to it
            bases = [i for i in range(start, pos) if not _IS_THAI_MARK.match(text, i)]
            ends = [*bases[1:], pos]
            out += [Piece(text[b] + text[bases[i + 1]], b, ends[i + 1], True) for i, b in enumerate(bases[:-1])]
            if bases:
                out.append(Piece(text[bases[-1]], bases[-1], pos, True))
        else:
            out += [Piece(run[i:i + 2], start + i, start + i + 2, True) for i in range(len(run) - 1)]
            out.append(Piece(run[-1], pos - 1, pos, True))
    if pos < len(text):
        out.append(Piece(text[pos:], pos, len(text), False))
    return out


def index_text(text: str | None) -> str | None:
    """What FTS5 indexes for `text`: CJK and Thai runs as bigrams, everything else unchanged. The
    same tokens as `pieces` (a test holds them equal), built by slicing: this runs on every insert."""
    if not text or not _SPECIAL.search(text):
        return text
    return _RUN.sub(_run_tokens, text.translate(_FOLD))


def _run_tokens(match: re.Match[str]) -> str:
    run = match.group()
    if _IS_THAI_MARK.search(run):
        run = _IS_THAI_MARK.sub("", run)
        if not run:
            return " "
    return " " + " ".join([run[i:i + 2] for i in range(len(run) - 1)] + [run[-1]]) + " "


def register(conn: Any) -> None:
    """Make `index_text` callable from SQL on this connection (the FTS triggers need it)."""
    conn.create_function(SQL_FUNCTION, 1, index_text, deterministic=True)


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def query_terms(query: str) -> list[str]:
    """FTS5 MATCH terms for `query`, to be OR-ed: each word quoted (so FTS5 syntax characters in
    a query are plain text), each CJK run a phrase of its bigrams. A run longer than WORD_CHARS is
    likely several words typed without spaces: its bigrams are added on their own too, so notes
    with some of its words match, below the ones with the whole run."""
    terms: list[str] = []
    for word in _WORD.findall(query):
        parts = pieces(word)
        while parts:
            if not parts[0].run:
                terms.append(_quote(parts.pop(0).text))
                continue
            run = []
            while parts and parts[0].run:
                run.append(parts.pop(0).text)
            bigrams = run[:-1]
            if not bigrams:
                terms.append(_quote(run[0]) + " *")
                continue
            terms.append(_quote(" ".join(bigrams)))
            if len(run) > WORD_CHARS:
                terms += [_quote(b) for b in bigrams]
    return list(dict.fromkeys(terms))


def highlights(module: ModuleType, terms: Sequence[str], bodies: Sequence[str]) -> list[list[tuple[int, int]]]:
    """For each body, the character spans that the OR of `terms` matches, as FTS5 matches them
    (stemming, diacritics, phrases), found with FTS5's highlight() in a scratch in-memory table
    of the same SQLite `module`. Overlapping spans (neighbouring bigrams) are merged."""
    found: list[list[tuple[int, int]]] = [[] for _ in bodies]
    if not terms or not bodies:
        return found
    indexed = [pieces(body.replace(_MARK_OPEN, " ").replace(_MARK_CLOSE, " ")) for body in bodies]
    conn = _scratch(module)
    conn.execute("BEGIN")  # rolled back: the table stays empty and FTS5 never writes a segment
    try:
        conn.executemany("INSERT INTO scratch(rowid, body) VALUES (?, ?)",
                         [(i, " ".join(p.text for p in body)) for i, body in enumerate(indexed)])
        rows = conn.execute(f"SELECT rowid, highlight(scratch, 0, '{_MARK_OPEN}', '{_MARK_CLOSE}') FROM scratch "
                            "WHERE scratch MATCH ?", (" OR ".join(terms),)).fetchall()
    finally:
        conn.execute("ROLLBACK")
    for rowid, marked in rows:
        found[rowid] = _source_spans(marked, indexed[rowid])
    return found


def _scratch(module: ModuleType) -> Any:
    """This thread's in-memory FTS5 table for highlighting, kept (creating one costs more than the
    highlighting itself) and always empty between calls."""
    conn = getattr(_THREAD, "scratch", None)
    if conn is None or _THREAD.module is not module:
        conn = module.connect(":memory:", isolation_level=None)
        conn.execute(f"CREATE VIRTUAL TABLE scratch USING fts5(body, tokenize='{TOKENIZE}')")
        _THREAD.scratch, _THREAD.module = conn, module
    return conn


def _source_spans(marked: str, parts: list[Piece]) -> list[tuple[int, int]]:
    """Map highlight()'s marks in the indexed text (`parts` joined by spaces) back to spans of the
    source text: a mark opens at the start of a token and closes at the end of one."""
    starts, ends, out = [], [], 0  # offsets of each part in the indexed text
    for part in parts:
        starts.append(out)
        out += len(part.text)
        ends.append(out)
        out += 1  # the joining space

    def source(offset: int, closing: bool) -> int:
        i = bisect.bisect_left(ends, offset) if closing else bisect.bisect_right(ends, offset)
        part = parts[i]
        if part.run:
            return part.end if closing else part.start
        return part.start + offset - starts[i]

    spans: list[tuple[int, int]] = []
    plain = opened = 0  # plain: offset in the unmarked indexed text
    for token in re.split(f"([{_MARK_OPEN}{_MARK_CLOSE}])", marked):
        if token == _MARK_OPEN:
            opened = source(plain, closing=False)
        elif token == _MARK_CLOSE:
            end = source(plain, closing=True)
            if spans and opened <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
            else:
                spans.append((opened, end))
        else:
            plain += len(token)
    return spans


def snippet(body: str, spans: Sequence[tuple[int, int]],
            width: int = SNIPPET_CHARS) -> tuple[str, list[tuple[int, int]]]:
    """About `width` characters of `body` around the most matches, and those matches' spans in
    the returned text. Without matches: the body's first lines, as before."""
    start, end = _window(body, spans, width)
    text = body[start:end]
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    prefix = "… " if start > 0 and spans else ""
    suffix = " …" if body[end:].strip() else ""
    shift = start + lead - len(prefix)
    marks = [(max(s - shift, len(prefix)), min(e - shift, len(prefix) + len(text)))
             for s, e in spans if s >= start + lead and e <= start + lead + len(text)]
    return prefix + text + suffix, [(s, e) for s, e in marks if s < e]


def _window(body: str, spans: Sequence[tuple[int, int]], width: int) -> tuple[int, int]:
    """[start, end) of the snippet: from the start of the line (or a little before) of the span
    that begins the densest run of spans, cut at a line end (or a space) near `width`."""
    if len(body.strip()) <= width:
        return 0, len(body)
    first = 0
    if spans:
        def covered(i: int) -> int:
            return sum(1 for s, e in spans[i:] if e <= spans[i][0] + width * 2 // 3)

        first = spans[max(range(len(spans)), key=lambda i: (covered(i), -i))][0]
    start = max(0, first - width // 5)
    line = body.rfind("\n", 0, first)
    if line >= start:
        start = line + 1
    elif start > 0:
        space = body.find(" ", start, first)
        start = space + 1 if space >= 0 else start
    end = min(len(body), start + width)
    if end < len(body):
        line_end = body.rfind("\n", start + width // 2, end)
        cut = line_end if line_end > 0 else body.rfind(" ", start + width * 3 // 4, end)
        end = cut if cut > 0 else end
    return start, end
