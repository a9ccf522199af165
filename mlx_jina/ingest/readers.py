"""Decide what kind of document a file is and turn it into plain text.

Bad files raise UnreadableFile with a short reason, so one broken note never stops an
index run; nothing is decoded lossily, because mangled text would be embedded and
shown as if it were the user's own words.
"""

from __future__ import annotations

import codecs
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlx_jina.errors import UnreadableFile
from mlx_jina.ingest.htmltext import html_to_text

MARKDOWN_EXTS = frozenset({".md", ".markdown", ".mdx"})
TEXT_EXTS = frozenset({".txt", ".rst", ".org", ".adoc", ".tex", ".csv", ".tsv", ".log"})
HTML_EXTS = frozenset({".html", ".htm"})
PDF_EXTS = frozenset({".pdf"})
CODE_LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript",
    ".go": "go", ".rs": "rust", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp",
    ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp", ".java": "java", ".kt": "kotlin",
    ".swift": "swift", ".rb": "ruby", ".php": "php", ".pl": "perl", ".lua": "lua",
    ".r": "r", ".scala": "scala", ".cs": "csharp", ".m": "objective-c", ".zig": "zig",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".fish": "fish", ".ps1": "powershell",
    ".sql": "sql", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json",
    ".ini": "ini", ".cfg": "ini", ".xml": "xml", ".css": "css", ".scss": "scss",
    ".el": "elisp", ".vim": "vim", ".nix": "nix", ".tf": "terraform", ".proto": "protobuf",
}
CODE_FILENAMES: dict[str, str] = {
    "makefile": "make", "dockerfile": "dockerfile", "justfile": "just",
    "rakefile": "ruby", "gemfile": "ruby", "vagrantfile": "ruby",
}
SNIFF_BYTES = 8192
#: Byte-order marks of the encodings read besides UTF-8 (UTF-32 first: its LE mark starts like UTF-16's).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Document:
    """Plain text of one file. Lines are the file's lines (HTML/PDF: the extracted text's)."""

    text: str
    kind: str  # "markdown" | "text" | "code" | "html" | "pdf"
    language: str | None = None  # set for code, e.g. "python"


def kind_of(path: Path) -> str | None:
    """Kind by file name alone; None means unsupported. Extension-less names count as text."""
    name = path.name.lower()
    if name in CODE_FILENAMES:
        return "code"
    ext = path.suffix.lower()
    if ext in MARKDOWN_EXTS:
        return "markdown"
    if ext in CODE_LANGUAGES:
        return "code"
    if ext in HTML_EXTS:
        return "html"
    if ext in PDF_EXTS:
        return "pdf"
    if ext in TEXT_EXTS or ext == "":
        return "text"
    return None


def language_of(path: Path) -> str | None:
    """Programming language of a code file, None for every other kind."""
    name = path.name.lower()
    return CODE_FILENAMES.get(name) or CODE_LANGUAGES.get(path.suffix.lower())


def read_document(path: Path) -> Document:
    """Read and decode one file. Raises UnreadableFile (and nothing else) for bad files."""
    kind = kind_of(path)
    if kind is None:
        raise UnreadableFile(f"unsupported file type '{path.suffix or path.name}'")
    data = read_bytes(path)
    if kind == "pdf":
        return Document(_pdf_text(data), "pdf")
    text = _decode(data)
    if kind == "html":
        return Document(html_to_text(text), "html")
    return Document(text, kind, language_of(path) if kind == "code" else None)


def read_bytes(path: Path) -> bytes:
    """A file's bytes, or UnreadableFile with the reason every caller reports."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UnreadableFile(unreadable_reason(e)) from None


def unreadable_reason(e: OSError) -> str:
    """The one wording of why a file or folder could not be read, for every skip report."""
    if isinstance(e, FileNotFoundError):
        return "file vanished"
    if isinstance(e, PermissionError):
        return "permission denied"
    if isinstance(e, IsADirectoryError):
        return "is a directory"
    return f"unreadable: {(e.strerror or str(e)).lower()}"


def bom_encoding(head: bytes) -> str | None:
    """'utf-16' or 'utf-32' when the bytes start with that encoding's byte-order mark, else None."""
    return next((name for bom, name in BOMS if head.startswith(bom)), None)


def _decode(data: bytes) -> str:
    """Strict UTF-8 (BOM dropped), or UTF-16/32 with a BOM (Windows editors write them); newlines
    normalised to '\\n' so line numbers match editors."""
    encoding = bom_encoding(data) or "utf-8-sig"
    if encoding == "utf-8-sig" and b"\0" in data[:SNIFF_BYTES]:
        raise UnreadableFile("binary file")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise UnreadableFile(f"invalid {encoding.upper().removesuffix('-SIG')} at byte {e.start}") from None
    if "\0" in text[:SNIFF_BYTES]:
        raise UnreadableFile("binary file")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _pdf_text(data: bytes) -> str:
    """Text of every page; pages are separated by a line holding only a form feed."""
    from pypdf import PdfReader  # deferred: pypdf is slow to import and only PDFs need it

    try:
        with _quiet("pypdf"):
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnreadableFile("PDF is encrypted")
            pages = [(page.extract_text() or "") for page in reader.pages]
    except UnreadableFile:
        raise
    except Exception as e:  # pypdf raises many types on malformed input; all mean "bad PDF"
        raise UnreadableFile(f"invalid PDF: {e}") from None
    pages = [p.replace("\r\n", "\n").replace("\r", "\n").strip("\n") for p in pages]
    if not any(p.strip() for p in pages):
        raise UnreadableFile("PDF has no extractable text")
    return "\n\f\n".join(pages)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """pypdf logs every recoverable oddity of real-world PDFs at WARNING; they are not ours to show.
    Raised to ERROR only while we read, so importing mlx-jina leaves the app's logging alone."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)
