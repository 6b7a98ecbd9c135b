"""A bounded load test of the web chat (`ui.web`): 20 concurrent chat sessions over loopback HTTP.

The Gradio app is served in-process over fake models (an embedded store, memory on, a login per session) and
driven through its own chat endpoint (``/ask``, the function the question box submits to) with
``gradio_client`` — one client, one signed-in user and one browser-like session each. Every question carries a
token naming its session and turn; the fake generator answers with the token it finds after the prompt's last
``Question:`` line, so an answer delivered to the wrong session, or a prompt built from another session's
history or another user's memory, is caught. Throughput and latency percentiles are printed (``-s`` shows them).

``TESSERA_LOAD_SECONDS`` (default 120) bounds the run; ``TESSERA_LOAD_SESSIONS`` (default 20) sets the number
of sessions.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.base import Generator, Message
from assistant.models.fake import FakeEmbedder
from retrievers.store import open_store
from assistant.backend import ChatBackend
from ui.web import serve
from ui.web.screenshot import free_port

SECONDS = float(os.environ.get("TESSERA_LOAD_SECONDS", "120"))
SESSIONS = int(os.environ.get("TESSERA_LOAD_SESSIONS", "20"))
TOKEN = re.compile(r"tok-s(\d+)-q\d+")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")]


class EchoGenerator(Generator):
    """Answers with the token of the prompt's question, and records any prompt that mixes sessions.

    An answer prompt ends ``Question: <q>\\nAnswer:``; a conversational rewrite prompt ends ``Last question:
    <q>`` (answered with the question itself, a valid rewrite). Every token elsewhere in the prompt (this
    session's history, the user's recalled memory) must belong to the question's own session: each session
    is its own user here, so a foreign token means history or memory crossed.
    """

    name = "echo"

    def __init__(self) -> None:
        self.crossed: list[str] = []
        self.calls = 0
        self._lock = threading.Lock()

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        prompt = messages[-1].content
        rewrite = re.findall(r"^Last question: (.*)$", prompt, re.MULTILINE)
        question = rewrite[-1] if rewrite else re.findall(r"^Question: (.*)$", prompt, re.MULTILINE)[-1]
        token = TOKEN.search(question)
        with self._lock:
            self.calls += 1
            if token is None or {m.group(1) for m in TOKEN.finditer(prompt)} != {token.group(1)}:
                self.crossed.append(prompt)
        if rewrite:
            yield question
            return
        reply = f"Lake Baikal is the deepest lake ({token.group(0) if token else 'no token'}) [1]."
        yield from re.findall(r"\S+\s*", reply)  # streamed word by word, as a model would


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ChatBackend, EchoGenerator]]:
    tmp = tmp_path_factory.mktemp("load")
    corpus = tmp / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    (corpus / "towers.md").write_text("# Towers\nThe Eiffel Tower is in Paris and is 330 metres tall.\n")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("TESSERA_"):
                mp.delenv(key)
        mp.chdir(tmp)
        settings = Settings(home=tmp / "home")
    settings = settings.model_copy(update={"context": settings.context.model_copy(update={"order": "retrieval"})})
    generator = EchoGenerator()
    assistant = Assistant(settings, embedder=FakeEmbedder(64), generator=generator, store=open_store(settings))
    backend = ChatBackend(settings, assistant=assistant)
    backend.ingest([corpus], progress=False)
    port = free_port()
    logins = [(f"user{i:02d}", f"pw-{i:02d}") for i in range(SESSIONS)]
    app = serve(backend, port=port, auth=logins, block=False)
    try:
        yield f"http://127.0.0.1:{port}/", backend, generator
    finally:
        app.close()
        backend.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def test_concurrent_sessions_get_their_own_answers(served) -> None:
    from gradio_client import Client

    url, backend, generator = served
    defaults = backend.settings
    start = threading.Barrier(SESSIONS)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    wrong: list[str] = []
    asked: dict[int, list[str]] = {i: [] for i in range(SESSIONS)}

    def session(i: int) -> None:
        try:
            client = Client(url, auth=(f"user{i:02d}", f"pw-{i:02d}"), verbose=False)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            with lock:
                errors.append(f"session {i} could not connect: {exc!r}")
            start.abort()
            return
        start.wait()
        history: list = []
        n = 0
        while time.monotonic() < deadline:
            question = f"How deep is Lake Baikal? tok-s{i:02d}-q{n:04d}"
            began = time.perf_counter()
            try:
                result = client.predict(
                    question, history, defaults.retrieval.mode == "hybrid", defaults.query.hyde,
                    defaults.query.expansion, False, defaults.retrieval.top_k, defaults.models.generator,
                    api_name="/ask",
                )
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(f"{question}: {exc!r}")
                n += 1
                continue
            elapsed = time.perf_counter() - began
            history = result[0]
            answer = _text(history[-1]) if history and history[-1]["role"] == "assistant" else ""
            asked_here = [_text(m) for m in history if m["role"] == "user"]
            with lock:
                latencies.append(elapsed)
                asked[i].append(question)
                if f"({question.rsplit(' ', 1)[-1]})" not in answer or asked_here != asked[i]:
                    wrong.append(f"{question} -> {answer!r}")
            n += 1
        client.close()

    deadline = time.monotonic() + SECONDS
    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(SESSIONS)]
    began = time.monotonic()
    deadline = began + SECONDS
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 300)
    wall = time.monotonic() - began
    assert not any(t.is_alive() for t in threads), "a session hung past the deadline"

    total = sum(len(q) for q in asked.values())
    p50, p95, p99 = (_percentile(latencies, q) for q in (50, 95, 99)) if latencies else (0.0, 0.0, 0.0)
    print(
        f"\nweb load: {SESSIONS} sessions for {wall:.0f} s: {total} answers ({total / wall:.1f}/s), "
        f"{len(errors)} errors, {len(wrong)} wrong or crossed, {len(generator.crossed)} mixed prompts; "
        f"latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(latencies, default=0) * 1000:.0f} ms, mean {statistics.fmean(latencies or [0]) * 1000:.0f} ms; "
        f"per session {min(len(q) for q in asked.values())}..{max(len(q) for q in asked.values())} answers"
    )
    assert not errors, errors[:5]
    assert not wrong, wrong[:5]
    assert not generator.crossed, generator.crossed[:2]
    assert all(asked.values()), "a session got no answer at all"
    # The server's view agrees: one session per user, holding exactly that user's questions in order.
    for i, questions in asked.items():
        user = f"user{i:02d}"
        sessions = backend.sessions(user)
        assert len(sessions) == 1, (user, sessions)
        assert [q for q, _ in backend.chat(user, sessions[0]).exchanges] == questions


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
