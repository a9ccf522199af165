"""Split a document's lines into sections (by Markdown heading) and blocks (preferred cut points).

Chunking packs blocks; it only cuts inside a block when one is larger than the token budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOT_SETEXT_TEXT = re.compile(r"^\s*(?:[-*+>|]|\d+[.)]\s|#|`{3}|~{3})")
# A top-level definition starts a new block in code even without a blank line before it.
_DEFINITION = re.compile(
    r"^(?:async\s+def|def|class|func|fn|pub|function|impl|struct|enum|interface|trait|type|module|"
    r"public|private|protected|static|export|const|let|var|package|CREATE|create)\b"
)


@dataclass(frozen=True)
class Block:
    """Lines [start, end) of the document (0-based), to be kept together when they fit."""

    start: int
    end: int
    heading: bool = False  # the heading line(s) themselves


@dataclass
class Section:
    """Text under one heading; `heading` is the path of titles, e.g. "Login > Bug fix"."""

    heading: str
    blocks: list[Block] = field(default_factory=list)
    titled: bool = False  # starts with its heading line (the first block)


def sections(lines: list[str], kind: str) -> list[Section]:
    """Sections of a document; Markdown and HTML (converted to Markdown) have headings."""
    if kind in ("markdown", "html"):
        found = _markdown_sections(lines)
    elif kind == "code":
        found = [Section("", _code_blocks(lines))]
    else:
        found = [Section("", _paragraphs(lines, 0, len(lines)))]
    return _fold_heading_only(found)


def _paragraphs(lines: list[str], start: int, end: int) -> list[Block]:
    blocks: list[Block] = []
    first: int | None = None
    for i in range(start, end):
        if lines[i].strip():
            if first is None:
                first = i
        elif first is not None:
            blocks.append(Block(first, i))
            first = None
    if first is not None:
        blocks.append(Block(first, end))
    return blocks


def _code_blocks(lines: list[str]) -> list[Block]:
    """Top-level units: a new one starts at an unindented line after a blank line, or at an
    unindented definition right after an indented body (so a decorator stays with its def)."""
    blocks: list[Block] = []
    first: int | None = None
    last = -1  # last non-blank line seen
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        top = not line[0].isspace()
        after_blank = last < i - 1
        after_body = last >= 0 and lines[last][:1].isspace()
        if first is None or (top and (after_blank or (after_body and _DEFINITION.match(line)))):
            if first is not None:
                blocks.append(Block(first, last + 1))
            first = i
        last = i
    if first is not None:
        blocks.append(Block(first, last + 1))
    return blocks


def _markdown_sections(lines: list[str]) -> list[Section]:
    out = [Section("")]
    path: list[tuple[int, str]] = []
    n = len(lines)
    i = 0
    para: int | None = None  # first line of the open paragraph

    def close_para(end: int) -> None:
        nonlocal para
        if para is not None:
            out[-1].blocks.append(Block(para, end))
            para = None

    def open_section(level: int, title: str, block: Block) -> None:
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
        out.append(Section(" > ".join(t for _, t in path if t), [block], titled=True))

    if n and lines[0].strip() == "---":  # YAML front matter
        end = next((j for j in range(1, n) if lines[j].strip() in ("---", "...")), None)
        if end is not None:
            out[0].blocks.append(Block(0, end + 1))
            i = end + 1
    while i < n:
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            close_para(i)
            closing = re.compile(rf"^ {{0,3}}{re.escape(fence.group(1)[0])}{{{len(fence.group(1))},}}[ \t]*$")
            end = next((j + 1 for j in range(i + 1, n) if closing.match(lines[j])), n)
            out[-1].blocks.append(Block(i, end))
            i = end
            continue
        if not line.strip():
            close_para(i)
        elif atx := _ATX.match(line):
            close_para(i)
            title = _ATX_CLOSING.sub("", atx.group(2) or "").strip()
            open_section(len(atx.group(1)), title, Block(i, i + 1, heading=True))
        elif para == i - 1 and (setext := _SETEXT.match(line)) and not _NOT_SETEXT_TEXT.match(lines[i - 1]):
            para = None  # a one-line paragraph underlined with === or --- is a heading
            open_section(1 if setext.group(1)[0] == "=" else 2, lines[i - 1].strip(), Block(i - 1, i + 1, heading=True))
        else:
            if para is None:
                para = i
        i += 1
    close_para(n)
    return out


def _fold_heading_only(found: list[Section]) -> list[Section]:
    """Drop empty sections; a heading with no text of its own joins the next section's first
    chunk (a lone '# Title' chunk would be useless to search)."""
    result: list[Section] = []
    carry: list[Block] = []
    for k, sec in enumerate(found):
        if not sec.blocks:
            continue
        if sec.titled and len(sec.blocks) == 1 and k + 1 < len(found):
            carry += sec.blocks
            continue
        result.append(Section(sec.heading, carry + sec.blocks, sec.titled))
        carry = []
    return result
