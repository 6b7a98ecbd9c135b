"""Ingestion pipeline with fake models and a real embedded Qdrant Edge store."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.models.fake import FakeEmbedder
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor, file_hash
from ingestion.propositions import DeterministicExtractor
from retrievers.store import open_store


@pytest.fixture
def ingestor(settings: Settings, fake_embedder: FakeEmbedder):
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        yield Ingestor(settings, fake_embedder, store, docstore, DeterministicExtractor())


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
    assert report.ok and report.passages >= 1 and report.propositions >= 1
    assert ingestor.store.count() == report.passages + report.propositions


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
    assert len(records) == 1 and records[0].passages == changed.passages
    assert ingestor.store.count() == changed.passages + changed.propositions == records[0].passages + records[0].propositions
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


def test_propositions_are_indexed_and_linked(ingestor: Ingestor, tmp_path: Path, fake_embedder) -> None:
    doc = tmp_path / "tower.md"
    doc.write_text("# Eiffel Tower\nThe Eiffel Tower is in Paris. It was completed in 1889.\n")
    ingestor.ingest_paths([doc], progress=False)
    record = ingestor.docstore.documents()[0]
    propositions = ingestor.docstore.propositions(record.id)
    assert record.propositions == len(propositions) >= 2
    passage_ids = {p.id for p in ingestor.docstore.passages(record.id)}
    assert all(q.passage_id in passage_ids for q in propositions)
    text = doc.read_text()
    assert all(0 <= q.start < q.end <= len(text) for q in propositions)
    query = fake_embedder.embed(["completed 1889"])[0]
    found = ingestor.store.search(query, "completed 1889", mode="hybrid", limit=3, candidates=10, unit="proposition")
    assert found and all(f.payload["unit"] == "proposition" for f in found)
    assert found[0].payload["passage_text"].startswith("# Eiffel Tower")


def test_forget_and_prune(ingestor: Ingestor, tmp_path: Path) -> None:
    keep, drop, gone = (tmp_path / n for n in ("keep.md", "drop.md", "gone.md"))
    for path in (keep, drop, gone):
        path.write_text(f"{path.stem} has some facts in it. They are short.")
    ingestor.ingest_paths([tmp_path], progress=False)
    assert ingestor.forget(str(drop.resolve())) is True
    assert ingestor.forget(str(drop.resolve())) is False
    assert sorted(Path(r.source).name for r in ingestor.docstore.documents()) == ["gone.md", "keep.md"]
    gone.unlink()
    report = ingestor.ingest_paths([keep], progress=False, prune=True)
    assert report.pruned == [str(gone.resolve())]
    assert [Path(r.source).name for r in ingestor.docstore.documents()] == ["keep.md"]
    record = ingestor.docstore.documents()[0]
    assert ingestor.store.count() == record.passages + record.propositions


_SLOW_INGEST = """
import sys, time
from pathlib import Path
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from ingestion.propositions import DeterministicExtractor
from retrievers.store import open_store

class SlowEmbedder(FakeEmbedder):
    def embed(self, texts):
        time.sleep(0.05)  # slow enough that the parent's kill lands mid-document
        return super().embed(texts)

settings = Settings(home=sys.argv[1], ingestion={"batch_size": 2})
with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
    Ingestor(settings, SlowEmbedder(), store, docstore, DeterministicExtractor()).ingest_paths([Path(sys.argv[2])], progress=False)
"""


def test_kill_mid_ingest_leaves_nothing_half_searchable(settings: Settings, tmp_path: Path, fake_embedder) -> None:
    import signal
    import subprocess
    import sys
    import time

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(12):
        body = " ".join(f"Fact {i}-{j} is about topic{i} and detail{j}." for j in range(30))
        (corpus / f"doc{i:02d}.md").write_text(f"# Doc {i}\n{body}\n")
    child = subprocess.Popen([sys.executable, "-c", _SLOW_INGEST, str(settings.home), str(corpus)])
    deadline = time.time() + 60
    docstore_file = settings.docstore_path
    while time.time() < deadline and child.poll() is None:
        if docstore_file.exists():
            with DocStore(docstore_file) as docstore:
                if len(docstore.documents()) >= 2:
                    break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before the kill: make it slower"

    with open_store(settings) as store, DocStore(docstore_file) as docstore:
        recorded = {r.id: r.passages + r.propositions for r in docstore.documents()}
        assert 2 <= len(recorded) < 12
        found = store.search(fake_embedder.embed(["fact topic"])[0], "fact topic detail", mode="hybrid", limit=1000, candidates=1000)
        per_doc: dict[str, int] = {}
        for hit in found:
            per_doc[hit.payload["doc_id"]] = per_doc.get(hit.payload["doc_id"], 0) + 1
        assert per_doc, "nothing was searchable after the kill"

        report = Ingestor(settings, fake_embedder, store, docstore, DeterministicExtractor()).ingest_paths([corpus], progress=False)
        assert len(report.ingested) + len(report.unchanged) == 12
        records = docstore.documents()
        assert len(records) == 12
        assert store.count() == sum(r.passages + r.propositions for r in records)
        # Every document that was searchable after the kill was complete: exactly its final unit count.
        final = {r.id: r.passages + r.propositions for r in records}
        for doc_id, count in per_doc.items():
            assert final[doc_id] == count, doc_id
        # And every recorded one was searchable in full (records are written after publishing).
        for doc_id, count in recorded.items():
            assert per_doc.get(doc_id) == count, doc_id


def test_proposition_header_puts_title_and_heading_before_propositions_only_when_asked() -> None:
    from assistant.types import Document, Passage, Proposition
    from ingestion.pipeline import _units_of

    document = Document("d", "tower.md", "Eiffel Tower", "It was completed in 1889.")
    passage = Passage("d:0", "d", "It was completed in 1889.", 0, 25, heading="History")
    proposition = Proposition("d:0:p0", "d:0", "d", "The tower was completed in 1889.", 0, 25)
    plain = dict((uid, text) for uid, text, _ in _units_of(document, [passage], [proposition]))
    headed = dict((uid, text) for uid, text, _ in _units_of(document, [passage], [proposition], proposition_header=True))
    assert plain["d:0:p0"] == "The tower was completed in 1889."
    assert headed["d:0:p0"] == "Eiffel Tower — History\nThe tower was completed in 1889."
    assert plain["d:0"] == headed["d:0"]  # passages always carry it
    payloads = [p for _, _, p in _units_of(document, [passage], [proposition], proposition_header=True)]
    assert payloads[1]["text"] == "The tower was completed in 1889."  # what is shown stays the statement


def test_a_changed_index_setting_reindexes_an_unchanged_file(settings: Settings, tmp_path: Path, fake_embedder) -> None:
    from ingestion.propositions import build_extractor

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world. It is in Siberia.\n")

    def ingest(s: Settings):
        with open_store(s) as store, DocStore(s.docstore_path) as docstore:
            ingestor = Ingestor(s, fake_embedder, store, docstore, build_extractor(s))
            return ingestor.ingest_paths([folder], progress=False)

    first = ingest(settings)
    assert settings.ingestion.propositions == "off" and first.propositions == 0  # the default index: passages
    assert set(first.stage_seconds) >= {"parse", "split", "embed", "bm25", "qdrant write", "publish", "docstore"}
    assert ingest(settings).unchanged  # the same settings: skipped
    rules = settings.model_copy(update={"ingestion": settings.ingestion.model_copy(update={"propositions": "rules"})})
    again = ingest(rules)
    assert again.ingested and again.propositions > 0  # not skipped as unchanged: its units differ now
    assert ingest(rules).unchanged


def test_a_file_recorded_before_the_recipe_counts_as_unchanged(ingestor: Ingestor, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\nSome words here.\n")
    ingestor.ingest_paths([folder], progress=False)
    source = str((folder / "a.md").resolve())
    with ingestor.docstore._db:  # the bare content hash an older version stored
        ingestor.docstore._db.execute("UPDATE documents SET content_hash = ? WHERE source = ?", (file_hash(folder / "a.md"), source))
    assert ingestor.ingest_paths([folder], progress=False).unchanged == [source]
