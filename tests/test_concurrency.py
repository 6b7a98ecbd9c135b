"""One process owns a home: the CLI and the web app on the same home never corrupt each other.

Qdrant Edge locks each shard's write-ahead log, so the process that opens a home's index (and memory) shards
owns the home until it exits. ``tessera web`` (and ``tessera chat``) claim the home when they start; every
other command that needs the index or memory (``ingest``, ``forget``, ``ask``, ``search``, ``memory ...``,
another ``web``) then exits with code 2 and one line naming the owner's pid and what to do, before reading or
writing anything. ``tessera docs`` only reads the SQLite docstore (WAL mode) and works alongside.

Everything runs as real subprocesses (``python -m assistant.cli``) over the fake models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from retrievers.store import EdgeStore
from ui.web.screenshot import free_port

from processes import interruptible, stop

ROOT = Path(__file__).resolve().parent.parent
REPLY = "Lake Baikal is the deepest lake [1]."
BUSY = "another Tessera process (pid {pid}) is using"
ADVICE = "close it or use a different --home"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(
        TESSERA_MODELS__EMBEDDER="fake", TESSERA_MODELS__GENERATOR=f"fake:{REPLY}", TESSERA_HOME=str(home),
        TESSERA_CONFIG=str(home.parent / "none.toml"), HF_HUB_OFFLINE="1",
    )
    return env


def tessera(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Runs ``python -m assistant.cli ARGS``; a hang fails the test (TimeoutExpired)."""
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args], cwd=ROOT, env=env, input=stdin or "",
        capture_output=True, text=True, timeout=timeout,
    )


def assert_refused(result: subprocess.CompletedProcess, pid: int) -> None:
    """Exit 2 and exactly one line on stderr naming the owner's pid and what to do; no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and BUSY.format(pid=pid) in lines[0] and ADVICE in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def points(home: Path) -> int:
    """The number of points in the home's index (opens the shard: only when no other process holds it)."""
    with EdgeStore(home / "qdrant" / "tessera", "tessera") as store:
        return store.count()


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A home with one document ingested by the CLI; yields the home, the CLI's env and a corpus folder."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    (corpus / "towers.md").write_text("# Towers\nThe Eiffel Tower is in Paris and is 330 metres tall.\n")
    home = tmp_path / "home"
    env = _env(home)
    result = tessera(env, "ingest", str(corpus / "lakes.md"))
    assert result.returncode == 0, result.stderr
    return home, env, corpus


@pytest.fixture
def web(home) -> Iterator[tuple[subprocess.Popen, str]]:
    """``tessera web`` serving the home; yields the process and its URL once it answers HTTP."""
    path, env, _ = home
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "web", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.communicate()
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "tessera web did not start serving within 180 s"
            time.sleep(0.5)
        yield process, url
    finally:
        if process.poll() is None:
            stop(process)


def _ask_web(url: str, question: str = "How deep is Lake Baikal?") -> tuple[str, list[str]]:
    """Asks the served app through its chat endpoint; returns the answer and the cited source labels."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    try:
        result = client.predict(question, [], True, False, "off", True, 4, f"fake:{REPLY}", api_name="/ask")
    finally:
        client.close()
    content = result[0][-1]["content"]
    text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
    return text, [label for label, _ in result[2]["choices"]]


def test_cli_commands_refuse_a_home_the_web_app_owns(home, web) -> None:
    path, env, corpus = home
    process, url = web
    docs_before = json.loads(tessera(env, "docs", "--json").stdout)
    assert _ask_web(url) == (REPLY, ["[1] lakes.md § Lakes"])
    commands = [
        ("ingest", str(corpus / "towers.md")),
        ("ingest", str(corpus), "--prune"),
        ("forget", str(corpus / "lakes.md")),
        ("ask", "How deep is Lake Baikal?"),
        ("ask", "How deep is Lake Baikal?", "--session", "s1"),
        ("search", "Baikal"),
        ("memory", "list"),
        ("memory", "forget"),
        ("chat", "--plain"),
        ("web", "--port", str(free_port())),
    ]
    for args in commands:
        assert_refused(tessera(env, *args, stdin="How deep is Lake Baikal?\n"), process.pid)
    # Read-only views of the docstore work alongside; nothing changed, and the web app still answers.
    assert json.loads(tessera(env, "docs", "--json").stdout) == docs_before
    assert _ask_web(url) == (REPLY, ["[1] lakes.md § Lakes"])
    assert process.poll() is None
    code, _, err = stop(process)
    assert "Traceback" not in err, err
    # The index holds exactly what it held (one passage; propositions are off by default), and the home is free again.
    assert points(path) == 1
    assert tessera(env, "ingest", str(corpus / "towers.md")).returncode == 0
    assert points(path) == 2


def test_web_app_refuses_a_home_a_cli_chat_owns(home) -> None:
    path, env, corpus = home
    chat = subprocess.Popen(
        [sys.executable, "-m", "assistant.cli", "chat", "--plain"], cwd=ROOT, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
    )
    try:
        chat.stdin.write("How deep is Lake Baikal?\n")
        chat.stdin.flush()
        assert chat.stdout.readline().strip() == REPLY  # answered: it holds the home
        for args in (("web", "--port", str(free_port())), ("ingest", str(corpus / "towers.md")), ("memory", "list")):
            assert_refused(tessera(env, *args), chat.pid)
        out, err = chat.communicate("How tall is the Eiffel Tower?\n", timeout=120)  # then end of input: it exits
        assert chat.returncode == 0 and "Traceback" not in err, err
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.communicate()
    assert points(path) == 1
    assert json.loads(tessera(env, "memory", "list", "--json").stdout)[0]["turns"] == 2


def test_two_ingests_at_once_never_corrupt_the_index(home) -> None:
    """Two ``ingest``s race on one home: each either succeeds or fails with the clear error; the index is whole."""
    path, env, corpus = home
    big = corpus.parent / "big"
    big.mkdir()
    for i in range(300):
        (big / f"lake{i}.md").write_text(f"# Lake {i}\nLake number {i} is deep and holds fish species {i}.\n")
    command = [sys.executable, "-m", "assistant.cli", "ingest", str(big)]
    racers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(racer.args, racer.returncode, out, err))
    for racer, result in zip(racers, results):
        if result.returncode != 0:
            other = next(r for r in racers if r is not racer)
            assert_refused(result, other.pid)
    assert any(r.returncode == 0 for r in results), [r.stderr for r in results]
    print(f"\ntwo ingests at once: exit codes {[r.returncode for r in results]}")  # [0, 2] or [0, 0]: both fine
    again = tessera(env, "ingest", str(big), "--json")
    report = json.loads(again.stdout)
    assert again.returncode == 0 and not report["ingested"] and len(report["unchanged"]) == 300
    records = json.loads(tessera(env, "docs", "--json").stdout)
    assert len(records) == 301
    assert points(path) == sum(r["passages"] + r["propositions"] for r in records)


WRITER = """
import sys, time
import numpy as np
from retrievers.store import EdgeStore, StorePoint
store = EdgeStore(sys.argv[1], "test")
store.ensure(8)
print("open", flush=True)
for b in range(40):
    points = [StorePoint(f"d{b}:{i}", np.full(8, i + 1, dtype="float32"), f"text {b} {i}", {"doc_id": f"d{b}", "unit_id": f"d{b}:{i}"}) for i in range(50)]
    store.upsert(points)
    store.publish([f"d{b}"])
    time.sleep(0.05)
store.close()
print("wrote 2000", flush=True)
"""


def test_a_refused_open_never_destroys_the_owners_writes(tmp_path: Path) -> None:
    """The owner writes while another process keeps trying to open the shard: every acknowledged point stays.

    (Qdrant Edge alone loads a shard's segments before it takes its WAL lock, and removes segments it finds
    half-written — the owner's fresh ones; the store's OS lock beside the shard keeps others off its files.)
    """
    from retrievers.store import StoreError

    shard = tmp_path / "shard"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(shard)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open", writer.stderr.read()
        refused = 0
        while writer.poll() is None:
            try:
                with EdgeStore(shard, "test") as store:
                    store.count()
            except StoreError as exc:
                assert BUSY.format(pid=writer.pid) in str(exc) or "another Tessera process" in str(exc)
                refused += 1
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0 and "wrote 2000" in out, err
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert refused > 0
    with EdgeStore(shard, "test") as store:
        assert store.count() == 2000
