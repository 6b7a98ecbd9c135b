"""Tests for ingestion.loaders: each format from a real fixture file, each error case, iter_files."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest

from ingestion import loaders
from ingestion.loaders import (
    Extracted,
    LoaderError,
    iter_files,
    load_document,
    normalise_text,
    register_loader,
    supported_extensions,
)

MB = 2**20


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Loaders a test registers vanish afterwards, so other test files see only the built-ins."""
    monkeypatch.setattr(loaders, "_LOADERS", dict(loaders._LOADERS))


def load(path: Path, max_bytes: int = 10 * MB):
    return load_document(path, max_bytes=max_bytes)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def make_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
        else:
            pdf.rect(20, 20, 50, 50)  # a page with a drawing but no text, like a scan
    pdf.output(str(path))
    return path


# --- formats -----------------------------------------------------------------------------------------


def test_supported_extensions_lists_the_builtins():
    assert {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"} <= supported_extensions()


def test_markdown_sections_point_at_headings(tmp_path):
    md = (
        "# Guide\r\n\r\nIntro text.   \n\n## Install\n\nRun it.\n\n"
        "```sh\n# not a heading\n```\n\n### Use it ##\nDone.\n"
    )
    doc = load(write(tmp_path / "guide.md", md))
    assert doc.title == "Guide"
    assert "\r" not in doc.text and "Intro text.\n" in doc.text  # CRLF and trailing spaces normalised
    sections = doc.metadata["sections"]
    assert [h for _, h in sections] == ["Guide", "Install", "Use it"]
    for offset, heading in sections:
        assert doc.text[offset:].lstrip("#").lstrip().startswith(heading)
    assert doc.source == str(tmp_path.resolve() / "guide.md")
    assert doc.id == hashlib.sha256(doc.source.encode()).hexdigest()[:16]


def test_markdown_without_heading_is_titled_by_file_stem(tmp_path):
    doc = load(write(tmp_path / "notes.markdown", "just some notes"))
    assert doc.title == "notes" and doc.metadata["sections"] == []


def test_latin1_text_is_decoded(tmp_path):
    text = "Le café crème est très bon. Une façade naïve, un résumé déjà vu à Noël.\n" * 5
    doc = load(write(tmp_path / "fr.txt", text.encode("latin-1")))
    assert doc.text == text.strip()
    assert doc.title == "fr"


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Déjà vu.", "latin-1"),  # charset-normalizer alone reads this as cp1257
        ("¿El niño comió piña en España? ¡Sí, mañana también!", "latin-1"),
        ("He said “hello” – it’s fine… €5.", "cp1252"),
        ("Съешь же ещё этих мягких французских булок, да выпей чаю.", "cp1251"),
        ("Grüße aus München", "utf-8"),
    ],
)
def test_legacy_encodings_are_decoded(tmp_path, text, encoding):
    assert load(write(tmp_path / "t.txt", text.encode(encoding))).text == text


def test_text_is_nfc_normalised(tmp_path):
    doc = load(write(tmp_path / "nfc.txt", "cafe\u0301 ok"))
    assert doc.text == "caf\u00e9 ok"


def test_utf16_with_bom_is_text_not_binary(tmp_path):
    doc = load(write(tmp_path / "wide.txt", "hello wide world".encode("utf-16")))
    assert doc.text == "hello wide world"


def test_html_drops_chrome_and_records_headings(tmp_path):
    html = """<!doctype html><html><head><title> The  Page </title><style>p{color:red}</style></head>
    <body><nav><a href="/">Home</a> menu</nav>
    <script>var secret = 1;</script>
    <h1>Main <em>heading</em></h1>
    <p>First   paragraph
       with wrapped text.</p><!-- a comment -->
    <div>Second <b>block</b></div>
    <h2>Details</h2><ul><li>one</li><li>two</li></ul>
    <table><tr><td>a</td><td>b</td></tr></table>
    <footer>copyright</footer></body></html>"""
    doc = load(write(tmp_path / "page.html", html))
    assert doc.title == "The Page"
    for dropped in ("secret", "menu", "Home", "copyright", "color", "a comment"):
        assert dropped not in doc.text
    assert "First paragraph with wrapped text.\n\nSecond block" in doc.text
    assert "one\ntwo" in doc.text and "a | b" in doc.text
    assert [h for _, h in doc.metadata["sections"]] == ["Main heading", "Details"]
    for offset, heading in doc.metadata["sections"]:
        assert doc.text[offset:].startswith(heading)
    assert doc.text.startswith("Main heading\n\nFirst")


def test_html_pre_keeps_whitespace_and_meta_charset_is_honoured(tmp_path):
    html = (
        '<html><head><meta charset="iso-8859-1"></head>'
        "<body><p>Caf\xe9</p><pre>  x = 1\n  y = 2\n</pre></body></html>"
    )
    doc = load(write(tmp_path / "code.html", html.encode("latin-1")))
    assert doc.text == "Café\n\n  x = 1\n  y = 2"
    assert doc.title == "code"


def test_html_header_inside_article_is_kept(tmp_path):
    html = "<body><header>site</header><article><header><h1>Post</h1></header><p>Body</p></article></body>"
    doc = load(write(tmp_path / "post.htm", html))
    assert doc.text == "Post\n\nBody" and doc.title == "Post"


def test_pdf_pages_map_offsets_to_pages(tmp_path):
    path = make_pdf(tmp_path / "two.pdf", ["Alpha page one.", "Beta page two."], title="Two Pages")
    doc = load(path)
    assert doc.title == "Two Pages"
    (s1, e1, p1), (s2, e2, p2) = doc.metadata["pages"]
    assert (p1, p2) == (1, 2)
    assert "Alpha page one." in doc.text[s1:e1] and "Beta page two." in doc.text[s2:e2]
    assert doc.text[e1:s2] == "\n\n" and e2 == len(doc.text)
    beta = doc.text.index("Beta")
    assert [p for s, e, p in doc.metadata["pages"] if s <= beta < e] == [2]


def test_pdf_without_title_uses_stem(tmp_path):
    assert load(make_pdf(tmp_path / "report.pdf", ["text"])).title == "report"


def test_pdf_blank_page_keeps_page_numbers(tmp_path):
    doc = load(make_pdf(tmp_path / "gap.pdf", ["First.", "", "Third."]))
    assert [p for _, _, p in doc.metadata["pages"]] == [1, 3]
    (s1, e1, _), (s3, e3, _) = doc.metadata["pages"]
    assert doc.text[s1:e1].strip() == "First." and doc.text[s3:e3].strip() == "Third."


def test_docx_paragraphs_and_headings(tmp_path):
    import docx

    d = docx.Document()
    d.core_properties.title = "Handbook"
    d.add_heading("Chapter One", level=1)
    d.add_paragraph("First paragraph.")
    d.add_paragraph("")
    d.add_paragraph("Second paragraph.")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "k", "v"
    d.save(str(tmp_path / "hb.docx"))
    doc = load(tmp_path / "hb.docx")
    assert doc.title == "Handbook"
    assert doc.text == "Chapter One\n\nFirst paragraph.\n\nSecond paragraph.\n\nk | v"
    assert doc.metadata["sections"] == [[0, "Chapter One"]]


def test_docx_without_core_title_uses_first_heading(tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph("Preface.")
    d.add_heading("Real Start", level=2)
    d.save(str(tmp_path / "nt.docx"))
    doc = load(tmp_path / "nt.docx")
    assert doc.title == "Real Start"
    assert doc.metadata["sections"] == [[len("Preface.\n\n"), "Real Start"]]


# --- errors ------------------------------------------------------------------------------------------


def assert_error(path: Path, *fragments: str, max_bytes: int = 10 * MB) -> LoaderError:
    with pytest.raises(LoaderError) as info:
        load_document(path, max_bytes=max_bytes)
    message = str(info.value)
    assert message.startswith(f"{info.value.path}: ")
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_corrupt_pdf(tmp_path):
    path = write(tmp_path / "bad.pdf", os.urandom(2000))
    assert_error(path, "could not be parsed as PDF: ")


def test_truncated_pdf(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", ["Some text here."]).read_bytes()
    assert_error(write(tmp_path / "cut.pdf", good[: len(good) // 3]), "PDF")


def test_corrupt_docx(tmp_path):
    assert_error(write(tmp_path / "bad.docx", b"PK\x03\x04 not really a zip"), "could not be parsed as DOCX")


def test_scanned_pdf_has_no_text_layer(tmp_path):
    assert_error(make_pdf(tmp_path / "scan.pdf", [""]), "no text layer", "OCR it first")


def test_encrypted_pdf(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, "classified")
    pdf.output(str(tmp_path / "locked.pdf"))
    assert_error(tmp_path / "locked.pdf", "encrypted", "decrypt it first")


def test_empty_markdown(tmp_path):
    assert_error(write(tmp_path / "empty.md", b""), "file is empty")


def test_whitespace_only_file_has_no_text(tmp_path):
    assert_error(write(tmp_path / "blank.md", "  \n\n\t\n"), "no text found")


def test_binary_txt(tmp_path):
    assert_error(write(tmp_path / "data.txt", b"\x00\x01\x02binary\x00\xff" * 50), "looks binary, not text")


def test_binary_without_nuls_in_md(tmp_path):
    data = bytes(range(1, 256)) * 20  # every byte but NUL: decodes as nothing sensible
    assert_error(write(tmp_path / "blob.md", data), "looks binary, not text")


def test_binary_html(tmp_path):
    assert_error(write(tmp_path / "blob.html", b"\x00\x01<p>x</p>" * 10), "looks binary, not text")


def test_too_large_file(tmp_path):
    path = write(tmp_path / "big.txt", "x" * (3 * MB))
    err = assert_error(
        path, "is 3.0 MB, over the 2.0 MB limit", "raise ingestion.max_file_mb", max_bytes=2 * MB
    )
    assert err.fix == "raise ingestion.max_file_mb"


def test_unsupported_extension_lists_supported(tmp_path):
    assert_error(write(tmp_path / "sheet.xlsx", b"data"), "unsupported file type '.xlsx'", ".md", ".pdf")


def test_missing_file(tmp_path):
    assert_error(tmp_path / "nope.md", "file not found")


def test_folder_is_not_a_file(tmp_path):
    assert_error(tmp_path, "is a folder")


def test_unreadable_file(tmp_path, monkeypatch):
    # chmod 0 does not stop root (the test may run as root), so the read itself is made to refuse.
    path = write(tmp_path / "secret.txt", "hidden")

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert_error(path, "permission denied", "chmod")


def test_fifo_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")
    assert_error(tmp_path / "pipe.txt", "is not a regular file")


def test_loader_bug_is_wrapped_and_error_pickles(tmp_path):
    def broken(data: bytes, path: Path) -> Extracted:
        raise KeyError("oops")

    register_loader("BROKEN", broken)
    err = assert_error(write(tmp_path / "x.broken", "text"), "could not be loaded: KeyError")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and isinstance(again, ValueError)


def test_register_loader_as_decorator(tmp_path):
    @register_loader(".rev")
    def _reverse(data: bytes, path: Path) -> Extracted:
        return Extracted(normalise_text(data.decode()[::-1]), title="Reversed")

    assert ".rev" in supported_extensions()
    doc = load(write(tmp_path / "a.rev", "cba"))
    assert (doc.text, doc.title) == ("abc", "Reversed")
    with pytest.raises(ValueError):
        register_loader(".", _reverse)


# --- iter_files --------------------------------------------------------------------------------------


def test_iter_files_recurses_sorted_skipping_hidden(tmp_path):
    root = tmp_path / "docs"
    hidden = [".git/config", ".hidden.md", "sub/.x/e.md"]
    for name in ["b.md", "a.txt", "sub/c.pdf", "sub/deeper/d.xyz", *hidden]:
        write(root / name, "x")
    single = write(tmp_path / "single.html", "<p>x</p>")
    os.symlink(root, root / "sub" / "loop")  # a link back up must not loop forever
    got = list(iter_files([single, root, root / "a.txt", tmp_path / "missing.md"]))
    assert got == [
        single,
        root / "a.txt",
        root / "b.md",
        root / "sub" / "c.pdf",
        root / "sub" / "deeper" / "d.xyz",
        tmp_path / "missing.md",
    ]
