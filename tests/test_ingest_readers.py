"""read_document(): kinds, decoding, HTML/PDF extraction, and UnreadableFile for every bad file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfWriter

from mlx_jina.ingest import readers
from mlx_jina.ingest.readers import Document, UnreadableFile, kind_of, read_document
from mlx_jina.ingest.walk import FileEntry, scan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "notes"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.md", "markdown"), ("a.MARKDOWN", "markdown"), ("a.mdx", "markdown"), ("a.txt", "text"),
        ("a.rst", "text"), ("a.org", "text"), ("README", "text"), ("a.py", "code"), ("a.ts", "code"),
        ("a.go", "code"), ("a.rs", "code"), ("a.yml", "code"), ("a.json", "code"), ("Makefile", "code"),
        ("a.html", "html"), ("a.HTM", "html"), ("a.pdf", "pdf"), ("a.docx", None), ("a.xyz", None),
    ],
)
def test_kind_of(name, kind):
    assert kind_of(Path(name)) == kind


def test_code_gets_language(tmp_path):
    (tmp_path / "s.py").write_text("print(1)\n")
    (tmp_path / "b.sh").write_text("echo hi\n")
    assert read_document(tmp_path / "s.py") == Document("print(1)\n", "code", "python")
    assert read_document(tmp_path / "b.sh").language == "shell"


def test_text_newlines_normalised_and_bom_dropped(tmp_path):
    (tmp_path / "a.md").write_bytes(b"\xef\xbb\xbf# T\r\none\rtwo\n")
    assert read_document(tmp_path / "a.md") == Document("# T\none\ntwo\n", "markdown")


def test_invalid_utf8_is_reported_with_offset(tmp_path):
    (tmp_path / "latin1.txt").write_bytes(b"caf" + "é au lait".encode("latin-1"))
    with pytest.raises(UnreadableFile) as err:
        read_document(tmp_path / "latin1.txt")
    assert err.value.reason == "invalid UTF-8 at byte 3"


def test_file_vanishing_between_scan_and_read(tmp_path):
    (tmp_path / "gone.md").write_text("soon gone\n")
    (entry,) = list(scan(tmp_path))
    assert isinstance(entry, FileEntry)
    entry.path.unlink()
    with pytest.raises(UnreadableFile) as err:
        read_document(entry.path)
    assert err.value.reason == "file vanished"


def test_path_replaced_by_a_folder(tmp_path):
    (tmp_path / "note.md").mkdir()
    with pytest.raises(UnreadableFile) as err:
        read_document(tmp_path / "note.md")
    assert err.value.reason == "is a directory"


def test_permission_denied(tmp_path, monkeypatch):
    (tmp_path / "a.md").write_text("x\n")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(readers, "open", deny, raising=False)  # tests run as root: chmod 000 would not stop us
    with pytest.raises(UnreadableFile) as err:
        read_document(tmp_path / "a.md")
    assert err.value.reason == "permission denied"


def test_unsupported_and_binary(tmp_path):
    (tmp_path / "a.xyz").write_text("x")
    (tmp_path / "a.txt").write_bytes(b"ab\0cd")
    with pytest.raises(UnreadableFile, match="unsupported file type '.xyz'"):
        read_document(tmp_path / "a.xyz")
    with pytest.raises(UnreadableFile, match="binary file"):
        read_document(tmp_path / "a.txt")


def test_html_visible_text_with_markdown_headings():
    doc = read_document(EXAMPLES / "garden" / "index.html")
    assert doc.kind == "html"
    lines = doc.text.split("\n")
    assert lines[0] == "Balcony garden log"  # the <title>
    for heading in ["# Balcony garden log", "## Tomatoes", "## Herbs", "### Basil", "### Mint"]:
        assert heading in lines
    assert "console.log" not in doc.text and "font-family" not in doc.text
    assert "- Pinch out side shoots every week." in lines
    # inline markup joins the text; source line breaks inside a paragraph are just spaces
    assert "Sown indoors mid March, moved out after the last frost (around 10 May). Sungold cherry" in doc.text
    assert "```\n# drip timer program (Gardena)\nstart 06:30, 8 minutes, every day\n```" in doc.text


def test_html_entities_and_nested_hidden(tmp_path):
    (tmp_path / "p.htm").write_text(
        "<p>Fish &amp; chips &lt;3</p><noscript><p>enable js</p></noscript><h3>Last</h3>tail", encoding="utf-8")
    assert read_document(tmp_path / "p.htm").text == "Fish & chips <3\n\n### Last\n\ntail\n"


def test_pdf_pages_become_lines_separated_by_form_feed():
    doc = read_document(EXAMPLES / "reading" / "bike-maintenance-checklist.pdf")
    assert doc.kind == "pdf"
    first, second = doc.text.split("\n\f\n")
    assert first.startswith("Bike maintenance checklist\nEvery ride\n")
    assert "Clean and lube the chain" in first
    assert second.startswith("Before a long tour\n")
    assert "Bleed the hydraulic brakes once a year" in second


def test_pdf_without_text(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    with open(tmp_path / "scan.pdf", "wb") as f:
        writer.write(f)
    with pytest.raises(UnreadableFile) as err:
        read_document(tmp_path / "scan.pdf")
    assert err.value.reason == "PDF has no extractable text"


def test_corrupt_pdf(tmp_path):
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    with pytest.raises(UnreadableFile, match="^invalid PDF"):
        read_document(tmp_path / "bad.pdf")
