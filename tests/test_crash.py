"""Crash safety: ``kill -9`` a real ingest or chat process at chosen moments, then check the home.

Each test runs a child Python process over the real embedded Qdrant Edge shard and SQLite files with fake
models. The child pauses at a chosen step (a wrapped method prints a marker and sleeps); the test waits for
the marker and sends SIGKILL, so the kill lands exactly between two writes. Then the home must open again
(the dead process released the Edge lock), search must never return part of a half-written document,
``tessera doctor`` must report what the kill left, ``--repair`` must fix it, and a re-run must finish.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder
from ingestion.docstore import DocStore
from memory import MemoryRecords
from retrievers.store import READY, open_store

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
FILES = 8
# Small passages and batches, so one ingest makes several writes of several upserts each (12 units a file:
# 6 passages + 6 propositions; a write every 2 files, upserted in chunks of 16).
INGESTION = {"chunk_size": 32, "chunk_overlap": 0, "batch_size": 16, "propositions": "rules"}  # many units: many batches to kill between
REPLY = "Lake Baikal is the deepest lake in the world [1]."
MARKER_TIMEOUT = 60.0

INGEST_CHILD = """
import sys, time
from pathlib import Path
from assistant.config import load_settings
from assistant.models.registry import create_embedder
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from ingestion.propositions import build_extractor
from retrievers.store import open_store

where, nth, corpus = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
settings = load_settings()
store, docstore, embedder = open_store(settings), DocStore(settings.docstore_path), create_embedder(settings)
calls = {"n": 0}

def pause_at(obj, name, before):
    original = getattr(obj, name)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if before and calls["n"] == nth:
            print(f"PAUSED {name}", flush=True)
            time.sleep(600)
        result = original(*args, **kwargs)
        if not before and calls["n"] == nth:
            print(f"PAUSED {name}", flush=True)
            time.sleep(600)
        if where == "random":
            print(f"CALLED {name} {calls['n']}", flush=True)
            time.sleep(0.1)
        return result
    setattr(obj, name, wrapper)

if where == "upsert":      # mid-batch: after the nth chunk's points were written pending
    pause_at(store, "upsert", before=False)
elif where == "publish":   # after publish, before the docstore commit of the nth write
    pause_at(docstore, "put_many", before=True)
elif where == "embed":     # while a chunk is being embedded, earlier chunks of its write already pending
    pause_at(embedder, "embed", before=True)
elif where == "random":    # no pause: the test kills at a time of its choosing
    pause_at(embedder, "embed", before=True)
print("STARTED", flush=True)
Ingestor(settings, embedder, store, docstore, build_extractor(settings)).ingest_paths([corpus], progress=False)
print("FINISHED", flush=True)
time.sleep(600)  # a kill may come late: the test always kills
"""

CHAT_CHILD = """
import sys, time
from assistant.config import load_settings
from assistant.backend import ChatBackend

where = sys.argv[1]
backend = ChatBackend(load_settings())
chat = backend.chat("ana", "s1")
chat.ask("Where is Lake Baikal?")
chat.ask("My cat Tom likes the Lake Baikal photos.")
if where == "stream":      # the answer is being streamed: nothing of this turn is written yet
    generator = backend.assistant.generator
    original = generator._stream
    def slow(*args, **kwargs):
        for piece in original(*args, **kwargs):
            print("STREAMING", flush=True)
            time.sleep(600)
            yield piece
    generator._stream = slow
else:                      # the turn is recorded in SQLite, its points not yet written
    store = backend.memory.store
    def stop(points):
        print("RECORDED", flush=True)
        time.sleep(600)
    store.upsert = stop
print("STARTED", flush=True)
chat.ask("How deep is Lake Baikal?")
print("FINISHED", flush=True)
"""


def settings_for(home: Path) -> Settings:
    return Settings(home=home, ingestion=INGESTION, models={"embedder": "fake", "generator": f"fake:{REPLY}"})


def child_env(home: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(
        PYTHONPATH=str(ROOT), TESSERA_HOME=str(home), TESSERA_CONFIG=str(tmp_path / "none.toml"),
        TESSERA_MODELS__EMBEDDER="fake", TESSERA_MODELS__GENERATOR=f"fake:{REPLY}",
        **{f"TESSERA_INGESTION__{k.upper()}": str(v) for k, v in INGESTION.items()},
    )
    return env


def make_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(FILES):
        sentences = [f"Topic {j}. The marker{i}x creature lives near river {j} and eats berries in autumn."
                     for j in range(6)]
        (folder / f"doc{i}.md").write_text("\n\n".join(sentences) + "\n")
    return folder


def kill_at(tmp_path: Path, script: str, args: list[str], home: Path, marker: str, delay: float = 0.0) -> str:
    """Runs a child script and SIGKILLs it ``delay`` seconds after it prints a line starting with ``marker``.

    Returns:
        What the child printed.
    """
    path, errors = tmp_path / "child.py", tmp_path / "child.err"
    path.write_text(textwrap.dedent(script))
    with errors.open("w") as stderr:  # a file, not a pipe: a chatty child never blocks on a full pipe
        child = subprocess.Popen(
            [sys.executable, str(path), *args], cwd=ROOT, env=child_env(home, tmp_path),
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    assert child.stdout is not None
    seen: list[str] = []
    watchdog = threading.Timer(MARKER_TIMEOUT, child.kill)  # a child that hangs silently ends the loop below
    watchdog.start()
    try:
        for line in child.stdout:  # ends when the child dies or finishes early (and the test fails below)
            seen.append(line.strip())
            if line.startswith(marker):
                time.sleep(delay)
                break
        else:
            child.wait(timeout=30)
            stderr = errors.read_text()[-3000:]
            pytest.fail(f"the child ended (or hung {MARKER_TIMEOUT} s) before {marker!r}: {seen}\n{stderr}")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL, f"the child was not killed (it exited {child.returncode}): {seen}"
    return "\n".join(seen)


def doctor(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["doctor", "--home", str(home), *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def scan(settings: Settings) -> dict[str, dict[str, str]]:
    """doc id -> unit id -> state of every indexed point."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    with open_store(settings) as store:
        for p in store.scan():
            out[p.doc_id][p.unit_id] = p.state
    return dict(out)


def searchable_docs(settings: Settings) -> set[str]:
    """The documents any search can return (one query per file's marker word)."""
    found: set[str] = set()
    embedder = FakeEmbedder()
    with open_store(settings) as store:
        for i in range(FILES):
            text = f"marker{i}x creature"
            for mode in ("hybrid", "dense", "sparse"):
                hits = store.search(embedder.embed([text])[0], text, mode=mode, limit=50, candidates=50)
                found |= {h.payload["doc_id"] for h in hits}
    return found


def ingest(settings: Settings, corpus: Path) -> None:
    result = runner.invoke(app, ["ingest", str(corpus), "--home", str(settings.home)])
    assert result.exit_code == 0, result.output


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The in-process CLI sees the same settings as the children."""
    for key, value in child_env(tmp_path / "unused", tmp_path).items():
        if key.startswith("TESSERA_") and key != "TESSERA_HOME":
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("TESSERA_HOME", raising=False)


# -- ingest ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "nth"),
    [
        ("upsert", 3),  # mid-batch: the first chunk of the second write is pending, the rest unwritten
        ("publish", 2),  # the second write's documents are published, not yet recorded
        ("embed", 4),  # the second chunk of the second write is being embedded
        ("random", 0),  # a random moment of the ingest (8 embeddings of 0.1 s), or just after it
    ],
)
def test_kill_during_ingest(tmp_path: Path, cli_env: None, where: str, nth: int) -> None:
    home, corpus = tmp_path / "home", make_corpus(tmp_path)
    settings = settings_for(home)
    delay = random.uniform(0.0, 0.9) if where == "random" else 0.0
    marker = "CALLED embed 1" if where == "random" else "PAUSED"
    kill_at(tmp_path, INGEST_CHILD, [where, str(nth), str(corpus)], home, marker, delay)
    owner = home / "qdrant" / "tessera" / "owner.pid"
    assert owner.read_text() != str(os.getpid())  # the dead child's pid

    # The home opens again (the dead process's Edge lock went with it); doctor names what the kill left.
    code, output = doctor(home)
    assert "warning  owner files of the embedded shards: 1 found" in output and "is not running" in output
    points = scan(settings)
    with DocStore(settings.docstore_path) as docstore:
        recorded = docstore.unit_ids()
    if where != "random":
        assert len(recorded) == 2  # the first write (2 files) was committed, the second was not
        assert set(points) - set(recorded), "the kill should have left points of unrecorded documents"
    if set(points) != set(recorded):
        assert code == 1, output
        assert "PROBLEM  index: documents with points but no docstore record" in output, output
        assert "Run `tessera doctor --repair` to fix." in output
    else:  # a random kill may land between two writes
        assert code == 0, f"killed {delay:.2f} s after the first embedding: {output}"
    # Search never returns a document that is only partly written or still pending.
    visible = searchable_docs(settings)
    ready = {doc: {u for u, s in units.items() if s == READY} for doc, units in points.items()}
    assert visible <= {doc for doc, units in ready.items() if units}
    if where == "upsert":
        assert visible == set(recorded)  # pending points are invisible
    if where == "publish":
        assert visible == set(points)  # published ones are complete (their records are what's missing)

    code, output = doctor(home, "--repair")
    assert code == 0 and ("After repair: healthy." in output or "Nothing to repair." in output), output
    code, output = doctor(home)
    assert code == 0 and "PROBLEM" not in output and "warning" not in output, output
    assert not (home / "qdrant" / "tessera" / "owner.pid").exists()

    ingest(settings, corpus)  # completes, and every document is searchable
    with DocStore(settings.docstore_path) as docstore:
        final = docstore.unit_ids()
    assert len(final) == FILES
    assert searchable_docs(settings) == set(final)
    # Whatever was searchable after the kill was a whole document: all its units, as a clean ingest makes them.
    for doc in visible:
        assert ready[doc] == final[doc], doc
    code, output = doctor(home)
    assert code == 0 and "PROBLEM" not in output, output


# -- chat --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("where", "marker", "turns"), [("stream", "STREAMING", 2), ("remember", "RECORDED", 3)])
def test_kill_during_a_chat_turn(tmp_path: Path, cli_env: None, where: str, marker: str, turns: int) -> None:
    home, corpus = tmp_path / "home", make_corpus(tmp_path)
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    settings = settings_for(home)
    ingest(settings, corpus)
    kill_at(tmp_path, CHAT_CHILD, [where], home, marker)

    records_path = settings.memory_path / "records.sqlite3"
    with MemoryRecords(records_path) as records:  # earlier turns are intact
        exchanges = records.exchanges("ana", "s1")
    assert [e.question for e in exchanges][:2] == ["Where is Lake Baikal?", "My cat Tom likes the Lake Baikal photos."]
    assert len(exchanges) == turns  # a kill mid-stream loses the turn; after the record, it is kept

    code, output = doctor(home)
    if where == "stream":
        assert code == 0 and "PROBLEM" not in output, output
    else:
        assert code == 1, output
        assert "PROBLEM  memory: sessions with recorded units missing from the store: 1 found" in output
        assert "user 'ana' session 's1'" in output
        code, output = doctor(home, "--repair")
        assert code == 0 and "After repair: healthy." in output, output
        code, output = doctor(home)
        assert code == 0 and "PROBLEM" not in output, output

    # The memory opens and recalls the earlier turns (and, once repaired, the recorded one).
    from assistant.backend import ChatBackend

    backend = ChatBackend(settings)
    try:
        recalled = backend.memory.recall("ana", "s1", "What is my cat called? Tom").units
        assert any("My cat Tom" in u.text for u in recalled)
        if where == "remember":  # the turn recorded before the kill is findable again
            recalled = backend.memory.recall("ana", "s1", "How deep is Lake Baikal?").units
            assert any(u.granularity == "turn" and "How deep" in u.text for u in recalled)
        answer = backend.chat("ana", "s1").ask("How deep is Lake Baikal?")
        assert answer.text.startswith("Lake Baikal")
    finally:
        backend.close()
    with MemoryRecords(records_path) as records:
        assert len(records.exchanges("ana", "s1")) == turns + 1
    code, output = doctor(home)
    assert code == 0 and "PROBLEM" not in output, output
