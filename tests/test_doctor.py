"""`tessera doctor` on hand-made inconsistent homes: what a crash between two writes leaves (no subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from typer.testing import CliRunner

from assistant.cli import app
from assistant.config import Settings
from assistant.doctor import Doctor, DoctorReport
from assistant.models.fake import FakeEmbedder
from assistant.types import Exchange, MemoryUnit
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from memory import Memory, MemoryRecords
from retrievers.client_store import ClientStore
from retrievers.store import PENDING, EdgeStore, PointInfo, Store, StoreError, StorePoint, open_store

runner = CliRunner()
DIM = 64
TEXTS = {
    "lakes.md": "# Lakes\nLake Baikal is the deepest lake in the world.\n",
    "rivers.md": "# Rivers\nThe Amazon carries more water than any other river.\n",
    "peaks.md": "# Peaks\nMount Everest is the highest mountain above sea level.\n",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in TEXTS.items():
        (folder / name).write_text(text)
    return folder


def ingest(settings: Settings, paths: list[Path], store: Store | None = None) -> None:
    """Ingests with the fake embedder into ``store`` (left open) or the home's own index (closed after)."""
    s = store or open_store(settings)
    try:
        with DocStore(settings.docstore_path) as docstore:
            Ingestor(settings, FakeEmbedder(DIM), s, docstore).ingest_paths(paths, progress=False)
    finally:
        if store is None:
            s.close()


def doctor(settings: Settings, **stores: Store) -> DoctorReport:
    with Doctor(settings, **stores) as d:
        return d.check()


def repair(settings: Settings, **stores: Store) -> tuple[DoctorReport, DoctorReport]:
    with Doctor(settings, **stores) as d:
        return d.repair(), d.check()


def problems(report: DoctorReport) -> dict[str, int]:
    return {c.name: len(c.problems) for c in report.checks if c.problems}


def point(uid: str, doc: str, state: str = "ready", text: str = "a stray zebra") -> StorePoint:
    vec = FakeEmbedder(DIM).embed([text])[0]
    return StorePoint(uid, vec, text, {"doc_id": doc, "unit_id": uid, "text": text, "state": state, "unit": "passage"})


def search(settings: Settings, text: str) -> list[str]:
    with open_store(settings) as s:
        hits = s.search(FakeEmbedder(DIM).embed([text])[0], text, mode="hybrid", limit=10, candidates=10)
    return [h.payload["source"] for h in hits]


# -- Store.scan, both backends ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["edge", "client"])
def test_scan_lists_every_point_across_pages(kind: str, tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", "t") if kind == "edge" else ClientStore(QdrantClient(":memory:"), "t")
    with store:
        assert list(store.scan()) == []  # no collection yet
        store.ensure(DIM)
        store.upsert([point(f"d{i % 3}:{i}", f"d{i % 3}", PENDING) for i in range(10)])
        store.publish(["d1"])
        found = sorted(store.scan(page=3), key=lambda p: p.unit_id)
    assert len(found) == 10
    assert found[0] == PointInfo("d0:0", "d0", "pending")
    assert {p.state for p in found if p.doc_id == "d1"} == {"ready"}
    assert {p.state for p in found if p.doc_id != "d1"} == {"pending"}


# -- the index ---------------------------------------------------------------------------------------


def test_a_fresh_or_healthy_home_passes(settings: Settings, corpus: Path) -> None:
    report = doctor(settings)
    assert report.healthy and problems(report) == {}
    assert not settings.home.exists()  # checking creates nothing
    ingest(settings, [corpus])
    report = doctor(settings)
    assert report.healthy and problems(report) == {}
    assert report.check("index.orphans").checked == 3 and report.check("index.missing").checked == 3


def test_orphan_points_are_found_and_deleted(settings: Settings, corpus: Path) -> None:
    ingest(settings, [corpus])
    with open_store(settings) as s:  # a killed ingest: one document pending, one published, neither recorded
        s.upsert([point("ghost:0", "ghost", PENDING), point("ghost:1", "ghost", PENDING), point("done:0", "done")])
        s.publish(["done"])
    report = doctor(settings)
    assert not report.healthy and problems(report) == {"index.orphans": 2}
    details = report.check("index.orphans").describe()
    assert "ghost: 2 point(s) (2 pending) without a docstore record" in details
    fixed, after = repair(settings)
    assert fixed.repaired and problems(fixed) == {"index.orphans": 2} and fixed.reingest == ()
    assert after.healthy and problems(after) == {}
    assert after.check("index.orphans").checked == 3  # the three real documents' points remain
    assert "stray" not in " ".join(search(settings, "stray zebra"))


def test_missing_vectors_reset_the_document_for_reingest(settings: Settings, corpus: Path) -> None:
    ingest(settings, [corpus])
    with DocStore(settings.docstore_path) as docstore:
        lakes = docstore.find(str(corpus / "lakes.md"))
    assert lakes is not None
    with open_store(settings) as s:  # a killed re-ingest: old points deleted, the new ones half written
        s.delete_docs([lakes.id])
    report = doctor(settings)
    assert problems(report) == {"index.missing": 1}
    [problem] = report.check("index.missing").problems
    assert problem.subject == lakes.source and "1 of 1 units have no searchable vector" in problem.detail
    assert report.reingest == (lakes.source,)
    fixed, after = repair(settings)
    assert fixed.reingest == (lakes.source,) and after.healthy
    with DocStore(settings.docstore_path) as docstore:
        assert docstore.find(lakes.source) is None  # so the next ingest redoes it
    ingest(settings, [corpus])
    assert doctor(settings).healthy
    assert str(corpus / "lakes.md") in search(settings, "deepest lake Baikal")


def test_pending_points_of_a_recorded_document_are_a_problem(settings: Settings, corpus: Path) -> None:
    ingest(settings, [corpus / "lakes.md"])
    with DocStore(settings.docstore_path) as docstore:
        [record] = docstore.documents()
    with open_store(settings) as s:
        s.delete_docs([record.id])
        s.upsert([point(f"{record.id}:0", record.id, PENDING)])
    [problem] = doctor(settings).check("index.missing").problems
    assert "1 of 1 units have no searchable vector; 1 point(s) still pending" in problem.detail


def test_client_store_path(settings: Settings, corpus: Path) -> None:
    """The server code path, against qdrant-client's in-memory mode."""
    index = ClientStore(QdrantClient(":memory:"), "tessera")
    ingest(settings, [corpus], store=index)
    index.upsert([point("ghost:0", "ghost", PENDING)])
    with DocStore(settings.docstore_path) as docstore:
        peaks = docstore.find(str(corpus / "peaks.md"))
    assert peaks is not None
    index.delete_docs([peaks.id])
    report = doctor(settings, index=index)
    assert problems(report) == {"index.orphans": 1, "index.missing": 1}
    fixed, after = repair(settings, index=index)
    assert after.healthy and fixed.reingest == (peaks.source,)
    assert {p.doc_id for p in index.scan()} == {d.id for d in DocStore(settings.docstore_path).documents()}


# -- memory ------------------------------------------------------------------------------------------


def open_memory(settings: Settings, store: Store | None = None) -> Memory:
    store = store or EdgeStore(settings.memory_path / "qdrant", "memory")
    return Memory(settings, FakeEmbedder(DIM), store, MemoryRecords(settings.memory_path / "records.sqlite3"))


def close_memory(memory: Memory, keep_store: bool) -> None:
    """Closes the memory; with ``keep_store`` only its records (an in-memory client would lose its points)."""
    memory.records.close() if keep_store else memory.close()


def payloads(store: Store) -> dict[str, dict]:
    from retrievers.store import Leg

    hits = store.query([Leg("all", "dense", np.ones(DIM, dtype=np.float32))], limit=100, candidates=100)
    return {h.unit_id: h.payload for h in hits}


@pytest.mark.parametrize("kind", ["edge", "client"])
def test_memory_units_without_points_and_points_without_units(settings: Settings, kind: str) -> None:
    store = None if kind == "edge" else ClientStore(QdrantClient(":memory:"), "memory")
    memory = open_memory(settings, store)
    memory.remember("ana", "s1", Exchange("My cat is called Tom.", "Noted."))
    memory.remember("ana", "s1", Exchange("I live in Lisbon.", "Noted."))
    memory.remember("bob", "s9", Exchange("I like chess.", "Noted."))
    before = payloads(memory.store)
    # A kill between the record and the store write: a recorded unit the store cannot find ...
    lost = MemoryUnit("turn-lost", "turn", "User: I was born in 1990.\nAssistant: Noted.", "s1", ("lost",), 9e9, "ana")
    memory.records.put_units([lost], FakeEmbedder(DIM).embed([lost.text]))
    # ... and a point nobody recorded (a stray write in another session).
    memory.store.upsert([StorePoint("stray", FakeEmbedder(DIM).embed(["x"])[0], "x", {
        "doc_id": "bob\x1fs9", "unit_id": "stray", "unit": "turn", "user": "bob", "session": "s9", "state": "ready"})])
    close_memory(memory, keep_store=store is not None)
    stores = {} if store is None else {"memory": store, "index": ClientStore(QdrantClient(":memory:"), "i")}
    report = doctor(settings, **stores)
    assert problems(report) == {"memory.missing": 1, "memory.orphans": 1}
    assert report.check("memory.missing").describe() == [
        "user 'ana' session 's1': 1 recorded unit(s) not in the memory store"]
    assert report.check("memory.orphans").describe() == ["user 'bob' session 's9': 1 point(s) without a memory record"]
    fixed, after = repair(settings, **stores)
    assert problems(fixed) == problems(report) and after.healthy
    memory = open_memory(settings, store)
    try:
        after_payloads = payloads(memory.store)
        assert "stray" not in after_payloads and "turn-lost" in after_payloads
        # The doctor rewrote both sessions' points: with exactly the payload Memory writes.
        assert {k: v for k, v in after_payloads.items() if k in before} == before
        recalled = memory.recall("ana", "s1", "When was I born?").units
        assert "turn-lost" in [u.id for u in recalled]
    finally:
        close_memory(memory, keep_store=store is not None)


# -- owner files and a held home -------------------------------------------------------------------------


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_owner_file_is_a_warning(settings: Settings, corpus: Path) -> None:
    ingest(settings, [corpus])
    pid = dead_pid()
    (settings.qdrant_path / "owner.pid").write_text(str(pid))
    report = doctor(settings)
    assert report.healthy  # harmless
    owner = report.check("owner")
    assert owner.severity == "warning" and owner.describe() == [
        f"{settings.qdrant_path / 'owner.pid'}: names pid {pid}, which is not running"
    ]
    assert not (settings.qdrant_path / "owner.pid").exists()  # our open replaced it, our close removed it


def test_a_held_home_is_refused(settings: Settings, corpus: Path) -> None:
    ingest(settings, [corpus])
    with EdgeStore(settings.qdrant_path, "tessera") as holder:
        holder.count()
        with pytest.raises(StoreError, match=rf"another Tessera process \(pid {os.getpid()}\)"):
            doctor(settings)


# -- the command -----------------------------------------------------------------------------------------


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TESSERA_MODELS__EMBEDDER", "fake")
    monkeypatch.setenv("TESSERA_HOME", str(settings.home))
    return settings


def test_command_reports_repairs_and_exits(env: Settings, corpus: Path) -> None:
    ingest(env, [corpus])
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "ok       index: documents with points but no docstore record (3 points checked)" in result.output
    with open_store(env) as s:
        s.upsert([point("ghost:0", "ghost", PENDING)])
    with DocStore(env.docstore_path) as docstore:
        rivers = docstore.find(str(corpus / "rivers.md"))
        assert rivers is not None
    with open_store(env) as s:
        s.delete_docs([rivers.id])
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "PROBLEM  index: documents with points but no docstore record: 1 found (3 points checked)" in result.output
    assert "- ghost: 1 point(s) (1 pending) without a docstore record" in result.output
    assert "Run `tessera doctor --repair` to fix." in result.output
    result = runner.invoke(app, ["doctor", "--repair"])
    assert result.exit_code == 0, result.output
    assert "REPAIRED index: documents with points but no docstore record: 1 found" in result.output
    assert "done: deleted their points" in result.output and "After repair: healthy." in result.output
    assert f"Re-ingest these documents: tessera ingest {rivers.source}" in result.output
    result = runner.invoke(app, ["doctor", "--json"])
    data = json.loads(result.output)
    assert result.exit_code == 0 and data["healthy"] and data["repair"] is None
    assert [c["name"] for c in data["check"]["checks"]] == [
        "owner", "index.orphans", "index.missing", "memory.missing", "memory.orphans"]
    assert runner.invoke(app, ["doctor", "--repair"]).output.strip().endswith("Nothing to repair.")


def test_command_on_a_held_home_exits_two(env: Settings, corpus: Path) -> None:
    ingest(env, [corpus])
    with EdgeStore(env.qdrant_path, "tessera") as holder:
        holder.count()
        result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 2
    assert "another Tessera process" in result.output and "Traceback" not in result.output


def test_command_help() -> None:
    result = runner.invoke(app, ["doctor", "--help"])
    assert result.exit_code == 0 and "--repair" in result.output
