"""Ingestion pipeline with fake models and a real embedded Qdrant Edge store."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.models.fake import FakeEmbedder
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.store import open_store


@pytest.fixture
def ingestor(settings: Settings, fake_embedder: FakeEmbedder):
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        yield Ingestor(settings, fake_embedder, store, docstore)


def write_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "good.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world.\n")
    (folder / "empty.md").write_text("")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage without objects")
    (folder / "blob.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "notes.xyz").write_text("unsupported")
    return folder


def test_bad_files_are_named_and_skipped(ingestor: Ingestor, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    errors: list[tuple[str, str]] = []
    report = ingestor.ingest_paths([corpus], progress=False, on_error=lambda p, r: errors.append((p, r)))
    assert [Path(p).name for p in report.ingested] == ["good.md"]
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"empty.md", "broken.pdf", "blob.txt", "notes.xyz"}
    assert "empty" in failed["empty.md"]
    assert "PDF" in failed["broken.pdf"]
    assert "binary" in failed["blob.txt"]
    assert "unsupported" in failed["notes.xyz"]
    assert errors == report.failed
    assert report.ok and report.passages >= 1
    assert ingestor.store.count() == report.passages


def test_nothing_readable_is_not_ok(ingestor: Ingestor, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    report = ingestor.ingest_paths([tmp_path / "empty.txt", tmp_path / "missing.md"], progress=False)
    assert not report.ok and len(report.failed) == 2


def test_reingest_skips_unchanged_and_replaces_changed(ingestor: Ingestor, tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("Alpha facts. " * 5)
    first = ingestor.ingest_paths([doc], progress=False)
    again = ingestor.ingest_paths([doc], progress=False)
    assert len(first.ingested) == 1 and again.unchanged == first.ingested and not again.ingested
    doc.write_text("Beta facts entirely new.")
    changed = ingestor.ingest_paths([doc], progress=False)
    assert changed.ingested == first.ingested
    records = ingestor.docstore.documents()
    assert len(records) == 1 and records[0].passages == ingestor.store.count() == changed.passages
    assert "Beta" in ingestor.docstore.passages(records[0].id)[0].text


def test_payload_carries_what_citations_need(ingestor: Ingestor, tmp_path: Path, fake_embedder) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text("# Install\nRun setup.sh to install.\n")
    ingestor.ingest_paths([doc], progress=False)
    found = ingestor.store.search(fake_embedder.embed(["install setup"])[0], "install setup", mode="hybrid", limit=1, candidates=5)
    payload = found[0].payload
    assert payload["source"] == str(doc.resolve())
    assert payload["heading"] == "Install" and payload["title"] == "Install"
    assert payload["text"].startswith("# Install")
