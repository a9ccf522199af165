"""Split a document's lines into sections (by Markdown heading) and blocks (preferred cut points).

Markdown structure is CommonMark's, from markdown-it-py's token line maps; code splits at top-level
definitions, plain text at blank lines.

Chunking packs blocks; it only cuts inside a block when one is larger than the token budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

# Block structure only: inline parsing (emphasis, links) would triple the cost and headings keep their raw text.
_MARKDOWN = MarkdownIt("commonmark").enable("table").disable(["inline", "text_join"])
_LISTS = ("bullet_list_open", "ordered_list_open")
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
    """CommonMark structure from markdown-it-py's token line maps: headings (ATX and setext) open
    sections; each top-level block (paragraph, fence, table, quote, list item) is a Block."""
    out = [Section("")]
    path: list[tuple[int, str]] = []
    skip = _front_matter_end(lines)
    if skip:
        out[0].blocks.append(Block(0, skip))
    tokens = _MARKDOWN.parse("\n".join(lines[skip:]))
    for k, token in enumerate(tokens):
        if token.map is None or token.nesting == -1:
            continue
        start, end = token.map[0] + skip, token.map[1] + skip
        top = token.level == 0
        if top and token.type == "heading_open":
            level, title = int(token.tag[1]), tokens[k + 1].content.strip()
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
            out.append(Section(" > ".join(t for _, t in path if t), [Block(start, end, heading=True)], titled=True))
        elif (top and token.type not in _LISTS) or (token.level == 1 and token.type == "list_item_open"):
            out[-1].blocks.append(Block(start, end))  # a list is cut between its items
    return out


def _front_matter_end(lines: list[str]) -> int:
    """Lines taken by YAML front matter (--- ... ---), which CommonMark would read as a rule and a
    setext heading."""
    if lines and lines[0].strip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].strip() in ("---", "...")), None)
        if end is not None:
            return end + 1
    return 0


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
