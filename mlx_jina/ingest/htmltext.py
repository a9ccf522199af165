"""Visible text of an HTML page, with headings as Markdown '#' lines so chunking sees structure."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from itertools import groupby

_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCKS = frozenset({
    "p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "ul", "ol",
    "dl", "dt", "dd", "table", "tr", "blockquote", "figure", "figcaption", "form",
    "hr", "address", "details", "summary", "pre", "title",
})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[tuple[str, bool]] = []  # (text, verbatim); verbatim = inside <pre>
        self.hidden: list[str] = []  # open hidden elements; text is dropped while non-empty
        self.pre = 0
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _HIDDEN:
            if tag not in _VOID:
                self.hidden.append(tag)
            return
        if self.hidden:
            return
        if tag in _HEADINGS:
            self.out.append(("\n\n" + "#" * _HEADINGS[tag] + " ", False))
        elif tag == "pre":
            self.pre += 1
            self.out.append(("\n\n```\n", False))
        elif tag == "br":
            self.out.append(("\n", False))
        elif tag == "li":
            self.out.append(("\n- ", False))
        elif tag in _BLOCKS:
            self.out.append(("\n\n", False))
        elif tag in ("td", "th"):
            self.out.append((" | ", False))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            self.out.append(("\n\n", False))
            return
        if self.hidden:
            if tag == self.hidden[-1]:
                self.hidden.pop()
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
            self.out.append(("\n```\n\n", False))
        elif tag in _HEADINGS or tag in _BLOCKS:
            self.out.append(("\n\n", False))

    def handle_data(self, data: str) -> None:
        if self.hidden and not self.in_title:
            return
        if self.pre:
            self.out.append((data, True))
        else:  # source line breaks are just whitespace in HTML
            self.out.append((re.sub(r"\s+", " ", data), False))


def html_to_text(html: str) -> str:
    """Visible text: script/style dropped, h1..h6 as '#' lines, <pre> kept verbatim in a fence."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    parts: list[str] = []
    for verbatim, group in groupby(parser.out, key=lambda seg: seg[1]):
        text = "".join(seg[0] for seg in group)
        if verbatim:
            parts.append("\n".join(line.rstrip() for line in text.split("\n")).strip("\n"))
        else:
            parts.append("\n".join(line.strip() for line in text.split("\n")))
    return re.sub(r"\n{3,}", "\n\n", "".join(parts)).strip("\n") + "\n"
