"""chunk_document(): token limits, structure, exact line ranges, overlap, no text lost."""

from __future__ import annotations

import math
import random
import re
import string
from pathlib import Path

import pytest

from mlx_jina.bench.random_weights import published_tokenizer_folder
from mlx_jina.ingest import Chunk, Document, FileEntry, chunk_document, chunking, read_document, scan
from mlx_jina.model.load import read_tokenizer, token_counts

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "notes"
TINY_FOLDER = ROOT / "weights" / "tiny" / "jina-v5-tiny"


def words(s: str) -> int:
    return len(s.split())


def chars(s: str) -> int:
    return len(s)


def batched(count):
    """chunk_document counts lists of texts in one call (a tokenizer's encode_batch)."""
    return lambda texts: [count(t) for t in texts]


WORDS, CHARS = batched(words), batched(chars)


def spans(text: str, chunks: list[Chunk]) -> list[tuple[int, int]]:
    """Character span of each chunk body in `text`, checking that the body is exactly the
    file's text from start_line to end_line (it may start or end inside a line)."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    out: list[tuple[int, int]] = []
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= len(lines)
        body_lines = c.body.split("\n")
        assert len(body_lines) == c.end_line - c.start_line + 1
        if len(body_lines) > 1:
            assert lines[c.start_line - 1].endswith(body_lines[0])
            assert lines[c.end_line - 1].startswith(body_lines[-1])
            assert body_lines[1:-1] == lines[c.start_line:c.end_line - 1]
            begin = starts[c.start_line] - 1 - len(body_lines[0])
        else:  # a piece of one line: the first match after the previous chunk's start
            begin = text.find(c.body, max(starts[c.start_line - 1], out[-1][0] + 1 if out else 0))
            assert starts[c.start_line - 1] <= begin < starts[c.start_line]
        out.append((begin, begin + len(c.body)))
    return out


def check(text: str, chunks: list[Chunk], *, title: str, count, max_tokens: int) -> list[tuple[int, int]]:
    """Invariants every chunking must satisfy; returns the body spans."""
    for c in chunks:
        header = f"{title} > {c.heading}" if c.heading else title
        shown, _, body = c.text.partition("\n\n")
        assert body == c.body
        assert shown == header or (shown.startswith("…") and header.endswith(shown[1:])
                                   and count(header) > max_tokens // 2)
        assert count(c.text) <= max_tokens, c
        assert c.body.strip() and c.body == c.body.rstrip()
    found = spans(text, chunks)
    covered = bytearray(len(text))
    for begin, end in found:
        covered[begin:end] = b"\1" * (end - begin)
    lost = [m.group() for m in re.finditer(r"\S+", text) if not all(covered[m.start():m.end()])]
    assert lost == []
    assert [c.start_line for c in chunks] == sorted(c.start_line for c in chunks)
    return found


def test_heading_paths_atx_setext_and_closing_hashes():
    text = (
        "Preamble before any heading.\n\n"
        "# Login\n\nIntro to login.\n\n"
        "## Bug fix ##\n\nThe fix.\n\n"
        "### Details\n\nDeep.\n\n"
        "## Tests\n\nTests text.\n\n"
        "Other Title\n===========\n\nTop again.\n\n"
        "Sub\n---\n\nUnder sub.\n"
    )
    chunks = chunk_document(Document(text, "markdown"), title="notes/auth.md", count_tokens=WORDS)
    check(text, chunks, title="notes/auth.md", count=words, max_tokens=400)
    assert [(c.heading, c.body.split("\n")[-1]) for c in chunks] == [
        ("", "Preamble before any heading."),
        ("Login", "Intro to login."),
        ("Login > Bug fix", "The fix."),
        ("Login > Bug fix > Details", "Deep."),
        ("Login > Tests", "Tests text."),
        ("Other Title", "Top again."),
        ("Other Title > Sub", "Under sub."),
    ]
    assert chunks[2].text.startswith("notes/auth.md > Login > Bug fix\n\n## Bug fix ##\n")


def test_heading_without_text_joins_the_next_section():
    text = "# Login\n\n## Bug fix\n\nThe token refresh failed.\n"
    (chunk,) = chunk_document(Document(text, "markdown"), title="a.md", count_tokens=WORDS)
    assert chunk.heading == "Login > Bug fix"
    assert chunk.body == text.rstrip()
    assert (chunk.start_line, chunk.end_line) == (1, 5)


def test_heading_never_ends_up_alone_above_a_long_paragraph():
    text = "## Notes\n\n" + " ".join(f"word{i}" for i in range(300)) + "\n"
    chunks = chunk_document(Document(text, "markdown"), title="t", count_tokens=WORDS, max_tokens=100)
    check(text, chunks, title="t", count=words, max_tokens=100)
    assert chunks[0].body.startswith("## Notes\n\nword0 word1")
    assert words(chunks[0].text) > 80


def test_not_headings():
    text = "#hashtag is not a heading\n- item\n---\n\n    ## indented code, not a heading\n"
    chunks = chunk_document(Document(text, "markdown"), title="t", count_tokens=WORDS)
    assert {c.heading for c in chunks} == {""}
    # headings only count in Markdown and HTML
    code = "# comment\nx = 1\n"
    assert chunk_document(Document(code, "code", "python"), title="t", count_tokens=WORDS)[0].heading == ""
    assert chunk_document(Document(code, "text"), title="t", count_tokens=WORDS)[0].heading == ""


def test_commonmark_structure_html_comments_and_list_items():
    text = ("# Plan\n\n<!--\n# commented out, not a heading\n-->\n\n"
            + "".join(f"- item {i} " + " ".join(f"w{i}_{j}" for j in range(30)) + "\n" for i in range(6)))
    chunks = chunk_document(Document(text, "markdown"), title="t", count_tokens=WORDS, max_tokens=70)
    check(text, chunks, title="t", count=words, max_tokens=70)
    assert {c.heading for c in chunks} == {"Plan"}
    # one list, no blank lines: still cut between its items, never inside one
    assert all(c.body.split("\n")[-1].startswith(("- item", "-->")) for c in chunks)


def test_fenced_code_is_not_split_on_hash_lines():
    text = (
        "# Script\n\nRun this:\n\n"
        "```bash\n# install\napt-get install jq\n\n# run\njq . data.json\n```\n\n"
        "~~~~\n# still code\n~~~\n## still code, closing fence too short\n~~~~\n\n"
        "After the fences.\n"
    )
    chunks = chunk_document(Document(text, "markdown"), title="t", count_tokens=WORDS)
    assert [c.heading for c in chunks] == ["Script"]
    check(text, chunks, title="t", count=words, max_tokens=400)


def test_front_matter_is_not_a_setext_heading():
    text = "---\ntitle: Trip\ntags: [travel]\n---\n\nBody.\n"
    (chunk,) = chunk_document(Document(text, "markdown"), title="t", count_tokens=WORDS)
    assert chunk.heading == "" and chunk.start_line == 1


def test_long_document_limits_lines_overlap_and_coverage():
    paras = [" ".join(f"w{p}_{i}" for i in range(7 + p % 13)) for p in range(120)]
    text = "# Big\n\n" + "\n\n".join(paras) + "\n\n## Small\n\nend\n"
    doc = Document(text, "markdown")
    chunks = chunk_document(doc, title="big.md", count_tokens=WORDS, max_tokens=60, overlap_tokens=12)
    found = check(text, chunks, title="big.md", count=words, max_tokens=60)
    big = [i for i, c in enumerate(chunks) if c.heading == "Big"]
    assert len(big) > 10
    for i in big[1:]:  # consecutive chunks of one section overlap by at most ~overlap_tokens
        prev_end, begin = found[i - 1][1], found[i][0]
        assert begin < prev_end
        assert 0 < words(text[begin:prev_end]) <= 12
    last = chunks[-1]
    assert last.heading == "Big > Small" and found[-1][0] >= found[-2][1]  # no overlap across sections
    assert words(chunks[0].text) > 40  # chunks are filled, not one paragraph each


def test_no_overlap_when_disabled():
    text = "\n\n".join(" ".join(["word"] * 9) for _ in range(40))
    chunks = chunk_document(Document(text, "text"), title="t", count_tokens=WORDS, max_tokens=50, overlap_tokens=0)
    found = check(text, chunks, title="t", count=words, max_tokens=50)
    assert all(a[1] < b[0] for a, b in zip(found, found[1:]))


def test_huge_single_paragraph_is_split_by_lines_then_words():
    lines = [" ".join(f"l{n}w{i}" for i in range(30)) for n in range(50)]
    text = "\n".join(lines) + "\n"
    chunks = chunk_document(Document(text, "text"), title="t", count_tokens=WORDS, max_tokens=100, overlap_tokens=10)
    check(text, chunks, title="t", count=words, max_tokens=100)
    # each chunk starts at a line boundary or is an overlap that ends at one
    assert len(chunks) >= 17
    one_line = " ".join(f"w{i}" for i in range(5000))
    chunks = chunk_document(Document(one_line, "text"), title="t", count_tokens=WORDS, max_tokens=64)
    check(one_line, chunks, title="t", count=words, max_tokens=64)
    assert all(c.start_line == c.end_line == 1 for c in chunks)


def test_sentences_are_preferred_over_words():
    sentences = [f"Sentence {i} has exactly seven words." for i in range(60)]
    text = " ".join(sentences)
    chunks = chunk_document(Document(text, "text"), title="t", count_tokens=WORDS, max_tokens=40, overlap_tokens=0)
    check(text, chunks, title="t", count=words, max_tokens=40)
    assert all(c.body.startswith("Sentence") and c.body.endswith("words.") for c in chunks)


def test_cjk_without_spaces_and_giant_word():
    text = "".join(f"我想订{n}张去里斯本的机票。" for n in range(40)) + "\n" + "".join(map(str, range(2000))) + "\n"
    chunks = chunk_document(Document(text, "text"), title="zh.txt", count_tokens=CHARS, max_tokens=120,
                            overlap_tokens=0)
    check(text, chunks, title="zh.txt", count=chars, max_tokens=120)
    assert chunks[0].body.endswith("。")


def test_code_splits_at_top_level_definitions():
    funcs = []
    for n in range(12):
        body = "\n".join(f"    v{n}_{i} = compute({i})" for i in range(8))
        funcs.append(f"@decorator\ndef f{n}(x):\n{body}\n\n    return x\n")
    text = "import os\n\n\n" + "\n\n".join(funcs)
    chunks = chunk_document(Document(text, "code", "python"), title="m.py", count_tokens=WORDS,
                            max_tokens=80, overlap_tokens=0)
    check(text, chunks, title="m.py", count=words, max_tokens=80)
    assert len(chunks) > 3
    for c in chunks[1:]:
        assert c.body.startswith("@decorator\ndef f")  # never cut inside a function, never off its decorator


@pytest.mark.parametrize("which", ["tiny", "v5"])
def test_every_chunk_fits_with_a_real_tokenizer(which):
    folder = TINY_FOLDER if which == "tiny" else published_tokenizer_folder()
    if folder is None:
        pytest.skip(f"{which} tokenizer.json not available")
    tok = read_tokenizer(folder)

    def count(s: str) -> int:
        return len(tok.encode(s, add_special_tokens=False).ids)

    for file in sorted(p for p in EXAMPLES.rglob("*") if p.is_file() and p.name != ".gitignore"):
        doc = read_document(file)
        for max_tokens in (48, 400):
            chunks = chunk_document(doc, title=file.name, count_tokens=batched(count), max_tokens=max_tokens)
            check(doc.text, chunks, title=file.name, count=count, max_tokens=max_tokens)
            if max_tokens == 400:  # room enough: no chunk is just heading lines
                assert not any(re.fullmatch(r"(#+ .*\n*)+", c.body) for c in chunks)


@pytest.mark.parametrize("which", ["tiny", "published"])
def test_the_length_bound_holds_for_real_tokenizers(which):
    """count_bound, which lets a chunk or header skip its count, never undercounts ASCII text (the
    examples' lines and random printable and control characters); other text is always counted."""
    folder = TINY_FOLDER if which == "tiny" else published_tokenizer_folder()
    if folder is None:
        pytest.skip(f"{which} tokenizer.json not available")
    tok = read_tokenizer(folder)
    rng = random.Random(0)
    texts = [line for file in sorted(EXAMPLES.rglob("*.md")) for line in file.read_text().split("\n") if line.isascii()]
    texts += ["".join(rng.choice(string.printable + "\x00\x07\x1b") for _ in range(rng.randint(0, 300)))
              for _ in range(500)]
    added = token_counts(tok, [""])[0]
    assert all(n <= chunking.count_bound(t, added) for t, n in zip(texts, token_counts(tok, texts)))
    assert chunking.count_bound("\u095b", added) == math.inf  # NFC decomposes it into two code points


def test_counting_is_linear_not_quadratic():
    text = "\n\n".join(f"Paragraph {p}. " + "lorem ipsum dolor " * (5 + p % 40) for p in range(2000))
    counted = 0

    def count(s: str) -> int:
        nonlocal counted
        counted += len(s)
        return len(s.split())

    chunks = chunk_document(Document(text, "text"), title="t", count_tokens=batched(count), max_tokens=400)
    assert len(chunks) > 100
    assert counted < 3 * len(text)


def test_empty_documents():
    for text in ["", "   \n\n\t\n", "\f\n"]:
        assert chunk_document(Document(text, "markdown"), title="t", count_tokens=WORDS) == []


def test_deterministic():
    doc = read_document(EXAMPLES / "work" / "login-bug-postmortem.md")
    a = chunk_document(doc, title="work/login-bug-postmortem.md", count_tokens=CHARS, max_tokens=300)
    b = chunk_document(doc, title="work/login-bug-postmortem.md", count_tokens=CHARS, max_tokens=300)
    assert a == b and len(a) > 5


def test_long_title_is_shortened_to_fit():
    (chunk,) = chunk_document(Document("short body\n", "text"), title="dir/" * 200 + "x.md", count_tokens=CHARS,
                              max_tokens=100, overlap_tokens=0)
    assert len(chunk.text) <= 100 and chunk.text.split("\n\n")[0].endswith("dir/x.md")


def test_bad_limits():
    doc = Document("x", "text")
    with pytest.raises(ValueError):
        chunk_document(doc, title="t", count_tokens=WORDS, max_tokens=8)
    with pytest.raises(ValueError):
        chunk_document(doc, title="t", count_tokens=WORDS, max_tokens=100, overlap_tokens=-1)


def test_examples_end_to_end():
    headings = set()
    for item in scan(EXAMPLES):
        assert isinstance(item, FileEntry) or item.rel == "scratch/"
        if not isinstance(item, FileEntry):
            continue
        doc = read_document(item.path)
        chunks = chunk_document(doc, title=item.rel, count_tokens=WORDS, max_tokens=120, overlap_tokens=16)
        assert chunks, item.rel
        check(doc.text, chunks, title=item.rel, count=words, max_tokens=120)
        headings |= {f"{item.rel} > {c.heading}" for c in chunks}
    assert "work/login-bug-postmortem.md > Postmortem: users logged out every 15 minutes > Root cause > " \
           "Why only some users" in headings
    assert "garden/index.html > Balcony garden log > Herbs > Basil" in headings
    assert "language/deutsch-und-chinesisch.md > Language learning notes / Sprachnotizen / 语言笔记 > 中文 > 量词 " \
           "(measure words)" in headings


class Recording:
    """A token counter (4 characters a token) that remembers the longest text it was asked about."""

    def __init__(self) -> None:
        self.calls = 0
        self.longest = 0

    def __call__(self, s: str) -> int:
        self.calls += 1
        self.longest = max(self.longest, len(s))
        return -(-len(s) // 4)


@pytest.mark.parametrize("kind", ["words", "one giant word"])
def test_a_huge_line_is_cut_before_it_is_counted(kind):
    """A one-line multi-megabyte file: no count ever sees more than a window of it, the work stays
    proportional to the number of chunks, and every chunk is within the token limit."""
    text = " ".join(f"w{i}" for i in range(60_000)) if kind == "words" else "".join(map(str, range(110_000)))
    count = Recording()
    chunks = chunk_document(Document(text, "text"), title="big.txt", count_tokens=batched(count), max_tokens=64,
                            overlap_tokens=8)
    check(text, chunks, title="big.txt", count=count, max_tokens=64)
    assert count.longest <= 64 * chunking.MAX_TOKEN_CHARS + 16
    assert count.calls < 12 * len(chunks)
    assert sum(len(c.body) for c in chunks) >= len(text) - text.count(" ")


def test_an_absurd_heading_is_cut_before_it_is_counted():
    text = "# " + "h" * 200_000 + "\n\nbody text\n"
    count = Recording()
    chunks = chunk_document(Document(text, "markdown"), title="t.md", count_tokens=batched(count), max_tokens=64)
    assert all(count(c.text) <= 64 for c in chunks) and count.longest <= 64 * chunking.MAX_TOKEN_CHARS + 16


def test_packing_ahead_of_the_counts_equals_counting_on_demand(monkeypatch):
    """The batched packing (guess, fetch, re-pack; whitespace counts shared across the documents)
    gives exactly the chunks of counting every text when it is needed (SPECULATIVE_PASSES = 0), on
    every example, with a real and a toy tokenizer."""
    folder = published_tokenizer_folder() or TINY_FOLDER
    tok = read_tokenizer(folder)

    def real(texts):
        return [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=True)]

    docs = [(file.name, read_document(file)) for file in sorted(EXAMPLES.rglob("*"))
            if file.is_file() and file.name != ".gitignore"]
    docs.append(("t", Document("\n\n".join(f"Paragraph {p}. " + "lorem ipsum dolor " * (5 + p % 40)
                                         for p in range(120)), "text")))
    docs.append(("line", Document(" ".join(f"w{i}." for i in range(1500)), "text")))
    cases = [(title, doc, count, budget) for title, doc in docs for count in (real, WORDS)
             for budget in (48, 400)]
    shared: dict[object, dict[str, int]] = {real: {}, WORDS: {}}
    ahead = [chunk_document(doc, title=title, count_tokens=count, max_tokens=budget, overlap_tokens=16,
                            shared=shared[count]) for title, doc, count, budget in cases]
    monkeypatch.setattr(chunking, "SPECULATIVE_PASSES", 0)
    on_demand = [chunk_document(doc, title=title, count_tokens=count, max_tokens=budget, overlap_tokens=16)
                 for title, doc, count, budget in cases]
    assert ahead == on_demand
    assert sum(len(c) for c in ahead) > 500


LONG_WORDS = " ".join(["extraordinarily"] * 30)  # 479 characters, 30 words: only a count says it fits 400


def test_a_small_note_counts_only_what_its_length_cannot_bound_and_never_its_lines_alone():
    """One call for the whitespace between units, one for the final checks that the text's length
    does not settle (all in one call); a short section and a short header are not counted at all."""
    text = f"# Trip\n\n{LONG_WORDS}\n\n## Food\n\nBread and cheese.\nThen coffee.\n"
    calls: list[list[str]] = []

    def count(texts):
        calls.append(list(texts))
        return [words(t) for t in texts]

    chunks = chunk_document(Document(text, "markdown"), title="trip.md", count_tokens=count)
    assert [c.body for c in chunks] == [f"# Trip\n\n{LONG_WORDS}", "## Food\n\nBread and cheese.\nThen coffee."]
    assert calls == [["", "\n", " ", "\n\n"], [chunks[0].text]]


def test_later_notes_of_a_run_share_the_whitespace_counts():
    """Whitespace counts are kept across the documents of a run: a later note needs only the final
    checks its length does not settle, or no call at all."""
    calls: list[list[str]] = []

    def count(texts):
        calls.append(list(texts))
        return [words(t) for t in texts]

    shared: dict[str, int] = {}
    for i, (text, wanted) in enumerate([("# Trip\n\nWe took the night train.\n", 1),
                                        (f"# Home\n\n{LONG_WORDS}\n\n## Sleep\n\nLong and deep.\n", 1),
                                        ("# Away\n\nBack again.\n\n## Food\n\nBread.\n", 0)]):
        calls.clear()
        chunks = chunk_document(Document(text, "markdown"), title=f"n{i}.md", count_tokens=count, shared=shared)
        assert chunks == chunk_document(Document(text, "markdown"), title=f"n{i}.md", count_tokens=WORDS)
        assert len(calls) == wanted
    assert calls == [] and {"", "\n", "\n\n"} <= set(shared)


def test_a_section_that_fits_is_one_chunk_even_when_its_lines_look_too_long():
    """Line counts only estimate (tokenizers are not additive); a section whose real count fits
    is not split because the estimate says otherwise."""
    text = "## Notes\n\n" + "\n".join(f"line {i} has four" for i in range(12)) + "\n"

    def count(texts):  # a line counted alone looks costly (+6), the joined text does not
        return [words(t) + (6 if "\n" not in t and t.strip() else 0) for t in texts]

    (chunk,) = chunk_document(Document(text, "markdown"), title="n.md", count_tokens=count, max_tokens=64)
    assert chunk.body == text.rstrip("\n") and count([chunk.text])[0] <= 64
    assert sum(count(text.split("\n"))) > 64  # what greedy packing by line estimates would have seen
