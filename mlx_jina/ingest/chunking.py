"""Cut a document into token-bounded chunks that follow its structure.

A section (text under one Markdown heading) whose whole text fits the budget is one chunk (a long
one is counted whole only when its lines' counts, less one per line break, fit). Any other is packed
greedily from its blocks (paragraphs, fenced code, top-level code units). A block larger than the
budget is cut into paragraphs, then lines, then sentences, then words, then characters, so no text
is ever dropped. Tokens are counted once per line and summed (linear in the file size); the final
text of each chunk is counted once more to guarantee the limit, because
tokenizers are not exactly additive. A heading line is never left alone at the end of a chunk.

Counting goes through a batch counter (`count_tokens(texts) -> counts`, e.g. a Rust tokenizer's
`encode_batch`), and the packer runs ahead of it: one pass packs the document assuming that every
final check passes and noting each count it lacks, one call counts all of those, and the next pass
uses them. When a pass only assumed checks that really pass, its chunks are exactly those of
counting on demand (it made the same decisions), so it stands. A small note takes one pass and one
call (its sections' texts) or none: the whitespace between units is counted once per run
(`shared`), a header or a chunk is not counted when its length already bounds it within its limit
(`count_bound`), and the lines of a section that fits are not needed. After SPECULATIVE_PASSES
the rest is counted on demand.

A span far longer than any chunk (a 5 MB file on one line) is cut into windows of at most
`max_tokens * MAX_TOKEN_CHARS` characters *before* anything counts it, and a long run of words
is cut into groups rather than single words, so tokenizer work stays linear and small.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mlx_jina.errors import InputError
from mlx_jina.ingest.readers import Document
from mlx_jina.ingest.structure import Block, Section, sections

MIN_MAX_TOKENS = 16
#: No token spans more characters than this in practice: a longer span than budget x this cannot
#: fit, so it is cut before being counted (cutting one that would have fit only makes chunks smaller).
MAX_TOKEN_CHARS = 32
#: Above this many words, a span is cut into groups of words (an eighth of a budget each: chunks stay
#: nearly full), not single words.
GROUP_WORDS_ABOVE = 64
#: English runs about 4 characters a token: a section shorter than the budget at that rate is counted
#: whole first (it probably fits); a longer one is counted whole only when its lines say it may fit.
LIKELY_TOKEN_CHARS = 4
#: Packings made ahead of the counts (a small note needs 1, a long section 2: its lines, then its
#: chunks' checks) before the rest is counted on demand (a chain of counts that depend on each other).
SPECULATIVE_PASSES = 2
#: Whitespace texts whose counts a run keeps across documents, at most (a hostile file could have many).
SHARED_COUNTS = 4096
_SENTENCE = re.compile(r".+?(?:[.!?]+(?=\s)|[。！？；]+|$)")
_WORD = re.compile(r"\S+")
_GAP = re.compile(r"(?<=\S)[^\S\n]*\n(?:[^\S\n]*\n)*")  # what usually lies between two units

CountTokens = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Chunk:
    """One unit to embed. `text` = context header, blank line, body; `body` is the file's raw snippet."""

    text: str
    body: str
    heading: str  # heading path, e.g. "Login > Bug fix"; "" before the first heading
    start_line: int  # 1-based, inclusive
    end_line: int


@dataclass(frozen=True)
class _Unit:
    """Characters [start, end) of the document that are packed as one piece."""

    start: int
    end: int
    tokens: int
    heading: bool = False  # a heading line, which should not end a chunk


def chunk_document(
    doc: Document,
    *,
    title: str,
    count_tokens: CountTokens,
    count_chunk: CountTokens | None = None,
    bound_chunk: Callable[[str], float] | None = None,
    max_tokens: int = 400,
    overlap_tokens: int = 48,
    shared: dict[str, int] | None = None,
) -> list[Chunk]:
    """Chunks of `doc` whose `text` (header "title > heading path" + body) is <= max_tokens.

    count_tokens: token counts of a list of texts, in one call. count_chunk: how a chunk's final
    text is counted against max_tokens, if not by count_tokens (the indexer counts it as the model
    will see it, and keeps those ids). bound_chunk: a bound on count_chunk's count made without a
    tokenizer (from the text's length, `count_bound`): a chunk within it is not counted (with no
    count_chunk, count_tokens's own bound). Consecutive chunks of one section share up to
    `overlap_tokens` (at most max_tokens // 4) of trailing text. shared: counts by count_tokens
    kept across the documents of a run (the whitespace between units, the empty text), so that
    a later document needs no call for them. Deterministic.
    """
    if max_tokens < MIN_MAX_TOKENS:
        raise InputError(f"max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}")
    if overlap_tokens < 0:
        raise InputError(f"overlap_tokens must be >= 0, got {overlap_tokens}")
    if not doc.text.strip():
        return []
    overlap = min(overlap_tokens, max_tokens // 4)  # small budgets: overlap must not crowd out new text
    lines = doc.text.split("\n")
    found = sections(lines, doc.kind)
    counts = _Counts(count_tokens, count_chunk, bound_chunk, {} if shared is None else shared)
    counts.want(["", "\n", " ", *(m.group() for m in _GAP.finditer(doc.text))])
    counts.fetch()
    for _ in range(SPECULATIVE_PASSES):
        chunks = _pack_all(doc.text, title, found, counts, max_tokens, overlap)
        if counts.confirmed():
            return chunks
    counts.on_demand = True
    return _pack_all(doc.text, title, found, counts, max_tokens, overlap)


def count_bound(text: str, added: int) -> float:
    """A bound on a tokenizer's count of ASCII `text` without running it (infinite for other text):
    every token covers at least one character, except those the tokenizer adds itself (`added`: its
    special tokens, which the empty text counts) and a SentencePiece-style leading "▁", and no
    normalizer lengthens ASCII (NFC decomposes a few other characters, NFKC expands some)."""
    return len(text) + added + 1 if text.isascii() else math.inf


def _pack_all(text: str, title: str, found: list[Section], counts: _Counts, max_tokens: int,
              overlap: int) -> list[Chunk]:
    packer = _Packer(text, title, counts, max_tokens, overlap)
    return [chunk for section in found for chunk in packer.pack(section)]


class _Counts:
    """Token counts for one document, fetched in batches. Ahead of a fetch, an unknown text is
    noted and answered with a guess: 0 tokens, and "it fits" for a chunk's final check. Sections
    are packed independently, so after a section's first guessed count the rest of that section is
    not noted (it may be built on the guess). `confirmed` tells whether a pass stands; `on_demand`
    counts at once. Whitespace counts go to `shared` too (few distinct texts, the same in every
    document)."""

    def __init__(self, count_tokens: CountTokens, count_chunk: CountTokens | None,
                 bound_chunk: Callable[[str], float] | None, shared: dict[str, int]) -> None:
        self.count_tokens = count_tokens
        self.count_chunk = count_chunk or count_tokens
        self.bound_chunk = self.at_most if count_chunk is None else bound_chunk
        self.shared = shared
        self.known: dict[str, int] = dict(shared)
        self.checked: dict[str, int] = {}  # final texts of chunks, by count_chunk
        self.wanted: dict[str, None] = {}
        self.wanted_checks: dict[str, None] = {}
        self.guessed = False  # a count was guessed in this pass: its packing may not be the real one
        self.section_guessed = False
        self.assumed: list[tuple[str, int]] = []  # checks assumed to pass: (text, limit)
        self.on_demand = False

    def new_section(self) -> None:
        self.section_guessed = False

    def want(self, texts: Iterable[str]) -> None:
        self.wanted.update((t, None) for t in texts if t not in self.known)

    def fetch(self) -> None:
        for wanted, count, known in ((self.wanted, self.count_tokens, self.known),
                                     (self.wanted_checks, self.count_chunk, self.checked)):
            todo = list(wanted)
            wanted.clear()
            if todo:
                known.update(zip(todo, count(todo)))
                if known is self.known and len(self.shared) < SHARED_COUNTS:
                    self.shared.update((t, known[t]) for t in todo if not t.strip())

    def at_most(self, text: str) -> float:
        """A bound on `text`'s count by count_tokens, without counting it (see `count_bound`)."""
        return count_bound(text, self.known[""])

    def count(self, text: str) -> int:
        found = self.known.get(text)
        if found is not None:
            return found
        if self.on_demand:
            self.known[text] = found = self.count_tokens([text])[0]
            return found
        if not self.section_guessed:
            self.wanted[text] = None
        self.guessed = self.section_guessed = True
        return 0

    def fits(self, text: str, limit: int) -> bool:
        """A chunk's final check: whether `text` is at most `limit` tokens by count_chunk (not
        counted when its bound says so)."""
        if self.bound_chunk is not None and self.bound_chunk(text) <= limit:
            return True
        found = self.checked.get(text)
        if found is None and self.on_demand:
            self.checked[text] = found = self.count_chunk([text])[0]
        if found is not None:
            return found <= limit
        if not self.section_guessed:
            self.wanted_checks[text] = None
            self.assumed.append((text, limit))
        return True

    def ready(self, texts: list[str]) -> bool:
        """Whether all of `texts` are counted (on demand: counts them now, in one call) and nothing
        this section used so far was a guess (a guessed header could leave no budget); if not,
        they are noted for the next fetch and this section waits for the next pass."""
        self.want(texts)
        if self.wanted and self.on_demand:
            self.fetch()
        if self.section_guessed or any(t in self.wanted for t in texts):
            self.guessed = self.section_guessed = True
            return False
        return True

    def confirmed(self) -> bool:
        """Fetch what this pass lacked (the next one needs it); True when it guessed no count and
        every check it assumed passes."""
        self.fetch()
        stands = not self.guessed and all(self.checked[text] <= limit for text, limit in self.assumed)
        self.guessed, self.assumed = False, []
        return stands


class _Packer:
    def __init__(self, text: str, title: str, counts: _Counts, max_tokens: int, overlap: int) -> None:
        self.text = text
        self.title = title
        self.counts = counts
        self.count = counts.count
        self.fits = counts.fits
        self.ready = counts.ready
        self.new_section = counts.new_section
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.line_tokens: dict[int, int] = {}
        self.max_chars = max_tokens * MAX_TOKEN_CHARS  # longest span ever handed to the tokenizer (about)

    def pack(self, section: Section) -> list[Chunk]:
        self.new_section()
        header = _fit_header(_header_text(self.title, section.heading, self.max_tokens // 2), self.counts,
                             self.max_tokens // 2)
        prefix = header + "\n\n"
        first, last = self._span(section.blocks[0])[0], self._span(section.blocks[-1])[1]
        body = self.text[first:last]
        whole = [Chunk(prefix + body, body, section.heading, self._line(first), self._line(last - 1))]
        short = last - first <= self.max_tokens * LIKELY_TOKEN_CHARS
        if short and self.fits(prefix + body, self.max_tokens):
            return whole  # counted whole before any of its lines: they are not needed
        if not self.ready([prefix, *self._unit_texts(section)]):
            return []  # a guess: the next pass has this section's line counts
        if not short and last - first <= self.max_chars and self._may_fit(section, prefix) \
                and self.fits(prefix + body, self.max_tokens):
            return whole
        budget = self.max_tokens - self.count(prefix)
        units: list[_Unit] = []
        for block in section.blocks:
            start, end = self._span(block)
            if block.heading and end - start <= self.max_chars:
                units.append(_Unit(start, end, self._tokens(start, end), heading=True))
            else:
                units += self._fit(start, end, budget)
        chunks: list[Chunk] = []
        i = 0
        lead: _Unit | None = None  # overlap carried from the previous chunk
        while i < len(units):
            j, lead = self._greedy(units, i, lead, budget)
            if j < len(units) and units[j - 1].heading and units[j].end - units[j].start > 1:
                units[j:j + 1] = self._split(units[j], budget)  # pull the start of the text up to its heading
                continue
            start = lead.start if lead else units[i].start
            j, fits = self._shrink(units, i, j, start, prefix)
            if not fits and (lead or units[i].end - units[i].start > 1):
                if lead:
                    lead = None
                else:
                    units[i:i + 1] = self._split(units[i], budget)
                continue
            body = self.text[start:units[j - 1].end]
            chunks.append(Chunk(prefix + body, body, section.heading, self._line(start),
                                self._line(units[j - 1].end - 1)))
            lead = self._overlap(units, i, j) if j < len(units) else None
            i = j
        return chunks

    def _span(self, block: Block) -> tuple[int, int]:
        """Characters of a block, without trailing blanks (an unclosed fence may end in them)."""
        start = self.line_starts[block.start]
        end = self.line_starts[block.end] - 1 if block.end < len(self.line_starts) else len(self.text)
        while end > start and self.text[end - 1].isspace():
            end -= 1
        return start, end

    def _may_fit(self, section: Section, prefix: str) -> bool:
        """Whether a long section could fit whole: its lines' counts, less one token per line break
        (where neighbouring tokens may merge), within the budget."""
        spans = [self._span(block) for block in section.blocks]
        tokens = self.count(prefix) + sum(self._tokens(s, e) for s, e in spans)
        tokens += sum(self._gap(a[1], b[0]) for a, b in zip(spans, spans[1:]))
        return tokens - self.text.count("\n", spans[0][0], spans[-1][1]) <= self.max_tokens

    def _unit_texts(self, section: Section) -> list[str]:
        """What `_tokens` counts to make the section's blocks into units: a block within one line
        as it is, a longer one line by line (a block too long to fit is cut first, counted later)."""
        out: list[str] = []
        for block in section.blocks:
            start, end = self._span(block)
            if end - start > self.max_chars:
                continue
            first, last = self._line(start) - 1, self._line(end - 1) - 1
            if first == last:
                out.append(self.text[start:end])
            else:
                out += [self.text[s:e] for s, e in map(self._line_span, range(first, last + 1)) if e > s]
        return out

    def _greedy(self, units: list[_Unit], i: int, lead: _Unit | None, budget: int) -> tuple[int, _Unit | None]:
        """End index of the units that fit after `lead`; drops `lead` if not even one fits."""
        used = lead.tokens + self._gap(lead.end, units[i].start) if lead else 0
        if lead and used + units[i].tokens > budget:
            lead, used = None, 0
        used += units[i].tokens
        j = i + 1
        while j < len(units):
            used += self._gap(units[j - 1].end, units[j].start) + units[j].tokens
            if used > budget:
                break
            j += 1
        return j, lead

    def _shrink(self, units: list[_Unit], i: int, j: int, start: int, prefix: str) -> tuple[int, bool]:
        """Real count of the packed text; drop trailing units until it fits (keeps at least one)."""
        while True:
            fits = self.fits(prefix + self.text[start:units[j - 1].end], self.max_tokens)
            if fits or j - i == 1:
                return j, fits
            j -= 1

    def _overlap(self, units: list[_Unit], i: int, j: int) -> _Unit | None:
        """Trailing text of units[i:j] worth ~overlap tokens, never the whole chunk."""
        if self.overlap == 0:
            return None
        used, k = 0, j - 1
        while k > i:
            cost = units[k].tokens + (self._gap(units[k].end, units[k + 1].start) if k < j - 1 else 0)
            if used + cost > self.overlap:
                break
            used += cost
            k -= 1
        if k < j - 1:
            return _Unit(units[k + 1].start, units[j - 1].end, used)
        return self._trailing_part(units[j - 1])

    def _trailing_part(self, unit: _Unit) -> _Unit | None:
        """End of a unit too big to repeat whole: its last lines, else its last words."""
        first, last = self._line(unit.start) - 1, self._line(unit.end - 1) - 1
        used, k = 0, last
        while k > first:  # whole lines, counted already, never the unit's first line
            cost = self._line_count(k) + (self._cost("\n") if k < last else 0)
            if used + cost > self.overlap:
                break
            used += cost
            k -= 1
        if k < last:
            return _Unit(self.line_starts[k + 1], unit.end, used)
        words = [m.start() for m in _WORD.finditer(self.text, max(unit.start, self.line_starts[last]), unit.end)]
        line_tokens = unit.tokens if first == last else self._line_count(last)
        per_word = max(1, line_tokens // len(words)) if words else 1
        n = min(len(words) - 1, self.overlap // per_word)  # never the first word
        while n > 0:  # usually one count: shrink only if the estimate was low
            tokens = self.count(self.text[words[-n]:unit.end])
            if tokens <= self.overlap:
                return _Unit(words[-n], unit.end, tokens)
            n //= 2
        return None

    def _fit(self, start: int, end: int, budget: int) -> list[_Unit]:
        """Units covering [start, end) that each fit the budget, cutting at the coarsest level possible."""
        if end - start > self.max_chars:  # cannot fit: cut it without counting it whole
            return [u for s, e in _pieces(self.text, start, end, None, budget, self.max_chars)
                    for u in self._fit(s, e, budget)]
        unit = _Unit(start, end, self._tokens(start, end))
        if unit.tokens <= budget:
            return [unit]
        return self._split(unit, budget)

    def _split(self, unit: _Unit, budget: int) -> list[_Unit]:
        out: list[_Unit] = []
        for s, e in _pieces(self.text, unit.start, unit.end, unit.tokens, budget, self.max_chars):
            out += self._fit(s, e, budget)
        return out

    def _tokens(self, start: int, end: int) -> int:
        """Tokens of a span, as the sum of its lines' cached counts (each line is counted once)."""
        first, last = self._line(start) - 1, self._line(end - 1) - 1
        if first == last and (start, end) != self._line_span(first):
            return self.count(self.text[start:end])  # part of one long line
        lines = sum(self._line_count(k) for k in range(first, last + 1))
        return lines + (last - first) * self._cost("\n")

    def _line_span(self, k: int) -> tuple[int, int]:
        end = self.line_starts[k + 1] - 1 if k + 1 < len(self.line_starts) else len(self.text)
        return self.line_starts[k], end

    def _line_count(self, k: int) -> int:
        if k not in self.line_tokens:
            s, e = self._line_span(k)
            self.line_tokens[k] = self.count(self.text[s:e]) if e > s else 0
        return self.line_tokens[k]

    def _gap(self, end: int, start: int) -> int:
        return self._cost(self.text[end:start])

    def _cost(self, gap: str) -> int:
        """Tokens of the whitespace between units (few distinct strings, all counted once)."""
        return self.count(gap) if gap else 0

    def _line(self, pos: int) -> int:
        return bisect_right(self.line_starts, pos)


def _pieces(text: str, start: int, end: int, tokens: int | None, budget: int,
            max_chars: int) -> list[tuple[int, int]]:
    """Next-finer cut of text[start:end]: paragraphs, lines, sentences, words (in groups when
    there are many), then characters. tokens: the span's count, None when it was too long to count."""
    span = text[start:end]
    if "\n" in span:
        lines, pos = [], start
        for line in span.split("\n"):
            lines.append((pos, pos + len(line)))
            pos += len(line) + 1
        paragraphs, cur = [], None
        for s, e in lines:
            if text[s:e].strip():
                cur = (cur[0], e) if cur else (s, e)
            elif cur:
                paragraphs.append(cur)
                cur = None
        if cur:
            paragraphs.append(cur)
        if len(paragraphs) > 1:
            return paragraphs
        return [(s, e) for s, e in lines if text[s:e].strip()]
    for pattern in (_SENTENCE, _WORD):
        parts = [_strip(text, m.start(), m.end()) for m in pattern.finditer(text, start, end)]
        parts = [p for p in parts if p[0] < p[1]]
        if pattern is _WORD and len(parts) > GROUP_WORDS_ABOVE:
            per_char = tokens / (end - start) if tokens else 1 / MAX_TOKEN_CHARS
            return _groups(parts, min(max_chars, max(1, int(budget / 8 / per_char))))
        if len(parts) > 1:
            return parts
    n = max(2, -(-tokens // budget) if tokens else -(-(end - start) // max_chars))  # one huge "word": slices
    step = -(-(end - start) // n)
    return [(s, min(s + step, end)) for s in range(start, end, step)]


def _groups(words: list[tuple[int, int]], chars: int) -> list[tuple[int, int]]:
    """Consecutive words joined into spans of about `chars` characters (a longer word stays alone)."""
    out: list[tuple[int, int]] = []
    first = words[0]
    for prev, word in zip(words, words[1:]):
        if word[1] - first[0] > chars:
            out.append((first[0], prev[1]))
            first = word
    out.append((first[0], words[-1][1]))
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _header_text(title: str, heading: str, limit: int) -> str:
    """ "title > heading path", its end only when far too long to fit `limit` (never counted whole)."""
    header = f"{title} > {heading}" if heading else title
    return "…" + header[-limit * MAX_TOKEN_CHARS:] if len(header) > limit * MAX_TOKEN_CHARS else header


def _fit_header(header: str, counts: _Counts, limit: int) -> str:
    """Keep the most specific end of an absurdly long header (a short one is not counted)."""
    count = counts.count
    if counts.at_most(header) <= limit or count(header) <= limit:
        return header
    lo, hi = 0, len(header)  # binary search for the longest suffix that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count("…" + header[-mid:]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return "…" + header[-lo:] if lo else "…"
