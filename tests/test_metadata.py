"""What a document says about itself: loaders record author, site and dates; passages carry them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.models.fake import FakeEmbedder
from assistant.types import Document, Passage
from ingestion.docstore import DocStore
from ingestion.loaders import load_document
from ingestion.metadata import describe, front_matter, normalise_date
from ingestion.pipeline import Ingestor, _units_of
from retrievers.store import Leg, open_store


def load(path: Path) -> Document:
    return load_document(path, max_bytes=10**7)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-10-05", "2023-10-05T00:00:00Z"),
        ("2023-10-05T14:30:00+02:00", "2023-10-05T12:30:00Z"),
        ("2023-10-05T14:30:00Z", "2023-10-05T14:30:00Z"),
        ("Thu, 05 Oct 2023 14:30:00 GMT", "2023-10-05T14:30:00Z"),
        ("D:20231005143000+02'00'", "2023-10-05T12:30:00Z"),
        ("D:20231005", "2023-10-05T00:00:00Z"),
        ("October 5, 2023", "2023-10-05T00:00:00Z"),
        ("5 October 2023", "2023-10-05T00:00:00Z"),
        (dt.date(2023, 10, 5), "2023-10-05T00:00:00Z"),
        (0, "1970-01-01T00:00:00Z"),
        ("yesterday-ish", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_dates_are_normalised_to_rfc3339_utc(value, expected) -> None:
    assert normalise_date(value) == expected


def test_describe_keeps_only_descriptive_fields_and_drops_what_it_cannot_read() -> None:
    raw = {"author": ["Ann Lee", "Bo Chan"], "site": "  The\nVerge ", "date": "not a date", "pages": [[0, 5, 1]]}
    assert describe(raw) == {"author": "Ann Lee, Bo Chan", "site": "The Verge"}


def test_front_matter_is_split_from_markdown() -> None:
    fields, rest = front_matter("---\ntitle: Q3 report\nauthor: Ann Lee\ndate: 2023-10-05\nsource: ACME\n---\n# Results\nUp 5%.\n")
    assert fields == {"title": "Q3 report", "author": "Ann Lee", "date": dt.date(2023, 10, 5), "site": "ACME"}
    assert rest == "# Results\nUp 5%.\n"
    assert front_matter("--- not front matter\ntext") == ({}, "--- not front matter\ntext")
    assert front_matter("---\n: [unclosed\n---\ntext")[1] == "---\n: [unclosed\n---\ntext"  # bad YAML: kept as text


def test_markdown_front_matter_becomes_metadata_not_text(tmp_path: Path) -> None:
    path = tmp_path / "q3.md"
    path.write_text("---\ntitle: Q3 report\nauthor: Ann Lee\ndate: 2023-10-05\n---\n# Results\nUp 5%.\n")
    doc = load(path)
    assert doc.title == "Q3 report" and doc.text.startswith("# Results")
    assert doc.metadata["author"] == "Ann Lee" and doc.metadata["date"] == "2023-10-05T00:00:00Z"
    assert doc.metadata["file_name"] == "q3.md"
    assert doc.metadata["sections"] == [[0, "Results"]]  # offsets index the text without the front matter


def test_html_meta_tags_are_read(tmp_path: Path) -> None:
    path = tmp_path / "a.html"
    path.write_text(
        "<html><head><title>Launch</title><meta property='og:site_name' content='The Verge'>"
        "<meta name='author' content='Ann Lee'>"
        "<meta property='article:published_time' content='2023-10-05T09:00:00-04:00'></head>"
        "<body><p>The phone launched.</p></body></html>"
    )
    doc = load(path)
    assert doc.text == "The phone launched."
    assert {k: doc.metadata[k] for k in ("site", "author", "date")} == {
        "site": "The Verge", "author": "Ann Lee", "date": "2023-10-05T13:00:00Z"
    }


def test_html_time_element_gives_the_date(tmp_path: Path) -> None:
    path = tmp_path / "b.html"
    path.write_text("<html><body><article><time datetime='2024-01-31'>Jan 31</time><p>Text.</p></article></body></html>")
    assert load(path).metadata["date"] == "2024-01-31T00:00:00Z"


def test_docx_core_properties_are_read(tmp_path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.author = "Ann Lee"
    d.core_properties.created = dt.datetime(2023, 10, 5, 8, 0)
    d.add_paragraph("Body.")
    d.save(str(tmp_path / "memo.docx"))
    doc = load(tmp_path / "memo.docx")
    assert doc.metadata["author"] == "Ann Lee" and doc.metadata["date"] == "2023-10-05T08:00:00Z"


def test_pdf_info_is_read(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_author("Ann Lee")
    pdf.set_creation_date(dt.datetime(2023, 10, 5, 8, 0, tzinfo=dt.timezone.utc))
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 10, "Body text.")
    pdf.output(str(tmp_path / "r.pdf"))
    doc = load(tmp_path / "r.pdf")
    assert doc.metadata["author"] == "Ann Lee" and doc.metadata["date"] == "2023-10-05T08:00:00Z"


def test_a_file_without_dates_gets_its_mtime_as_modified(tmp_path: Path) -> None:
    import os

    path = tmp_path / "plain.txt"
    path.write_text("Plain words.")
    os.utime(path, (1696500000, 1696500000))
    doc = load(path)
    assert doc.metadata["modified"] == "2023-10-05T10:00:00Z" and "date" not in doc.metadata


def test_passages_carry_the_metadata_and_the_header_names_it() -> None:
    doc = Document("d1", "d1", "Launch", "The phone launched.", {"site": "The Verge", "author": "Ann Lee", "date": "2023-10-05"})
    passage = Passage("d1:0", "d1", doc.text, 0, len(doc.text))
    ((_, text, payload),) = _units_of(doc, [passage], [], metadata_header=True)
    assert text == "Launch\nThe Verge, by Ann Lee, October 5, 2023\nThe phone launched."
    assert payload["site"] == "The Verge" and payload["date"] == "2023-10-05T00:00:00Z"
    ((_, plain, _),) = _units_of(doc, [passage], [])
    assert plain == "Launch\nThe phone launched."  # the header is a setting; the payload fields are always there


def test_metadata_reaches_the_store(settings: Settings, fake_embedder: FakeEmbedder) -> None:
    doc = Document("d1", "d1", "Launch", "The phone launched.", {"site": "The Verge", "date": "2023-10-05"})
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, store, docstore).index_documents([(doc, "h1")], progress=False)
        leg = Leg("q0.dense", "dense", fake_embedder.embed(["phone launched"])[0])
        (hit,) = store.query([leg], limit=5, candidates=5, unit="passage")
    assert hit.payload["site"] == "The Verge" and hit.payload["date"] == "2023-10-05T00:00:00Z"
