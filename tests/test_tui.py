"""The Textual terminal chat (`ui.tui`), driven through Textual's pilot over fake models."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static
from textual.worker import WorkerState

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.base import Message
from assistant.models.fake import FakeEmbedder, FakeGenerator
from retrievers.store import open_store
from assistant.backend import ChatBackend
from ui.tui import TesseraApp
from ui.tui.app import ingest_summary
from ui.tui.screens import IngestScreen, SessionListScreen
from ui.tui.widgets import MessageView, TraceView, summarise

QUESTION = "How deep is Lake Baikal?"
REPLY = "Lake Baikal is 1,642 metres deep [1]."


class SlowGenerator(FakeGenerator):
    """A fake that takes ``delay`` seconds per word and records when its stream is closed."""

    def __init__(self, replies: Sequence[str] = (), delay: float = 0.2) -> None:
        super().__init__(replies)
        self.delay, self.closed = delay, False

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        try:
            for piece in super()._stream(messages, max_new_tokens, temperature):
                time.sleep(self.delay)
                yield piece
        finally:
            self.closed = True


def make_backend(settings: Settings, tmp_path: Path, embedder: FakeEmbedder, generator: FakeGenerator) -> ChatBackend:
    """A backend over fakes, without memory, with two small documents ingested."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    (corpus / "towers.md").write_text("# Towers\nThe Eiffel Tower is in Paris and is 330 metres tall.\n")
    settings = settings.model_copy(
        update={
            "memory": settings.memory.model_copy(update={"enabled": False}),
            "context": settings.context.model_copy(update={"order": "retrieval"}),  # predictable [n]
        }
    )
    assistant = Assistant(settings, embedder=embedder, generator=generator, store=open_store(settings))
    backend = ChatBackend(settings, assistant=assistant)
    backend.ingest([corpus], progress=False)
    return backend


@pytest.fixture
def backend(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator) -> Iterator[ChatBackend]:
    fake_generator.enqueue(REPLY)
    backend = make_backend(settings, tmp_path, fake_embedder, fake_generator)
    yield backend
    backend.close()


def conversation(app: TesseraApp) -> str:
    return "\n".join(str(view.content) for view in app.query(MessageView))


async def ask(pilot: Pilot, question: str, *, wait: bool = True) -> None:
    pilot.app.query_one("#question", Input).focus()
    await pilot.press(*question, "enter")
    if wait:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def until(pilot: Pilot, condition, seconds: float = 5.0) -> None:
    """Lets the app run until ``condition()`` holds (fails after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


async def test_answer_streams_in_with_its_citation(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.sub_title == "session s1 · default"
        await ask(pilot, QUESTION)
        text = conversation(app)
        assert QUESTION in text and REPLY in text
        assert "Sources: [1] lakes.md § Lakes" in text
        prompts = [str(o.prompt) for o in app.query_one("#source-list", OptionList).options]
        assert prompts == ["[1] lakes.md § Lakes"]
        assert app.query_one("#question", Input).value == ""
        assert app.chat.exchanges[0][0] == QUESTION


async def test_opening_a_source_shows_its_passage(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, QUESTION)
        passage = app.query_one("#passage", Static)
        assert "Baikal is the deepest" not in str(passage.content)
        options = app.query_one("#source-list", OptionList)
        options.focus()
        options.highlighted = 0
        await pilot.press("enter")
        assert "Lake Baikal is the deepest lake in the world, 1,642 metres deep." in str(passage.content)


async def test_clicking_a_source_opens_it_at_120_columns(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(120, 40)) as pilot:
        await ask(pilot, QUESTION)
        await pilot.click("#source-list", offset=(3, 0))
        await pilot.pause()
        assert "deepest lake" in str(app.query_one("#passage", Static).content)


async def test_abstention_unsupported_sentences_and_selecting_an_answer(
    settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    fake_generator.enqueue(REPLY + " It was painted green in 1999.")
    backend = make_backend(settings, tmp_path, fake_embedder, fake_generator)
    app = TesseraApp(backend, session="s1")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await ask(pilot, QUESTION)
            await ask(pilot, "quantum chromodynamics gluon")
            first, second = [v for v in app.query(MessageView) if v.role == "assistant"]
            assert "⚠ Not supported by the sources: It was painted green in 1999." in str(first.content)
            assert second.has_class("abstained") and "(searched 2 passages; none held the answer)" in str(second.content)
            assert app.query_one("#source-list", OptionList).option_count == 0
            await pilot.click(first)
            assert [str(o.prompt) for o in app.query_one("#source-list", OptionList).options] == ["[1] lakes.md § Lakes"]
    finally:
        backend.close()


async def test_trace_view_lists_the_stages(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, QUESTION)
        trace = app.query_one("#trace", TraceView)
        assert not trace.display
        await pilot.press("ctrl+t")
        assert trace.display and not app.query_one("#sources").display
        details = {name: detail for name, _, detail in trace.rows}
        assert {"search", "generate", "cite"} <= set(details)
        assert f"variants: {QUESTION}" in details["embed_query"]
        assert "order: lakes.md | towers.md" in details["order"]
        assert all(name in app.export_screenshot() for name in ("stage", "embed_query", "search"))
        trace.scroll_end(animate=False)
        await pilot.pause()
        assert all(name in app.export_screenshot() for name in ("generate", "cite"))
        await pilot.press("ctrl+t")
        assert not trace.display and app.query_one("#sources").display
        assert "embed_query" not in app.export_screenshot()


async def test_switching_sessions(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, QUESTION)
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SessionListScreen)
        await pilot.press("enter")  # the first choice: "+ New session"
        assert app.chat.session != "s1" and conversation(app) == ""
        assert app.sub_title == f"session {app.chat.session} · default"
        assert str(app.query_one("#passage", Static).content).startswith("Ask a question")
        await pilot.press("ctrl+s")
        options = app.screen.query_one(OptionList)
        listed = [str(o.prompt) for o in options.options][1:]
        # Titled by the first question, with the day and time it started; an empty session by its id.
        assert re.fullmatch(rf"(\w{{3}} \d\d \d\d:\d\d|now)  {re.escape(QUESTION)}", listed[0])  # no memory here: "now"
        assert listed[1] == f"now  (no questions yet) {app.chat.session}  (current)"
        options.highlighted = 1
        await pilot.press("enter")
        assert app.chat.session == "s1" and REPLY in conversation(app)
        assert [str(o.prompt) for o in app.query_one("#source-list", OptionList).options] == ["[1] lakes.md § Lakes"]
        await pilot.press("ctrl+s", "escape")
        assert not isinstance(app.screen, SessionListScreen) and app.chat.session == "s1"


async def test_escape_cancels_a_generation(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    generator = SlowGenerator(["Lake Baikal " + "is very deep indeed " * 20 + "[1]."])
    backend = make_backend(settings, tmp_path, fake_embedder, generator)
    app = TesseraApp(backend, session="s1")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await ask(pilot, QUESTION, wait=False)
            view = app.query(MessageView).last()
            await until(pilot, lambda: view.text.startswith("Lake Baikal"))
            assert app.generating
            await pilot.press(*"again", "enter")  # typing works, submitting is refused
            assert app.query_one("#question", Input).value == "again"
            assert any("Still answering" in n.message for n in app._notifications)
            await pilot.press("escape")
            assert "(cancelled)" in str(view.content)
            await app.workers.wait_for_complete()
            await until(pilot, lambda: generator.closed)  # the thread stopped and closed the stream
            assert not app.generating
            assert app.workers._workers == set() or all(w.state == WorkerState.CANCELLED for w in app.workers)
            assert "deep indeed [1]." not in view.text and app.chat.exchanges == []
    finally:
        backend.close()


async def test_quit_exits_cleanly(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
    assert app.return_code == 0


async def test_quit_while_generating_stops_the_worker(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    generator = SlowGenerator(["word " * 50], delay=0.1)
    backend = make_backend(settings, tmp_path, fake_embedder, generator)
    app = TesseraApp(backend, session="s1")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await ask(pilot, QUESTION, wait=False)
            await until(pilot, lambda: app.query(MessageView).last().text != "")
            await pilot.press("ctrl+q")
        assert app.return_code == 0
        deadline = time.monotonic() + 5
        while not generator.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert generator.closed and len(generator.calls) == 1
    finally:
        backend.close()


async def test_ingest_screen_ingests_and_notifies(backend: ChatBackend, tmp_path: Path) -> None:
    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "rivers.md").write_text("# Rivers\nThe Nile is about 6,650 kilometres long.\n")
    (extra / "broken.pdf").write_bytes(b"not a pdf")
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_ingest()
        await pilot.pause()
        assert isinstance(app.screen, IngestScreen)
        app.screen.query_one(Input).value = str(extra)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, IngestScreen)
        messages = [n.message for n in app._notifications]
        assert any(m.startswith("ingested 1, unchanged 0, failed 1: broken.pdf: ") for m in messages), messages
        assert any(d.source.endswith("rivers.md") for d in backend.documents())
        app.action_ingest()
        await pilot.pause()
        app.screen.query_one(Input).value = str(tmp_path / "missing")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("No such file or folder" in n.message for n in app._notifications)


async def test_command_palette_offers_the_commands(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p", *"ingest")
        await until(pilot, lambda: "Ingest files…" in str([str(o.prompt) for o in app.screen.query(OptionList).last().options]))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, IngestScreen))


def test_ingest_summary_and_trace_summary() -> None:
    class Report:
        ingested, unchanged, failed = ["a.md"], ["b.md", "c.md"], [("/x/d.pdf", "not a PDF")]

    assert ingest_summary(Report()) == "ingested 1, unchanged 2, failed 1: d.pdf: not a PDF"
    assert summarise({"variants": ["q", "q2"], "k": 0.12345}) == "variants: q | q2; k: 0.123"
    assert summarise({"hits": [{"unit_id": "u1"}]}, {"u1": "a.md"}) == "hits: a.md"
    assert len(summarise({"raw": "word " * 100})) == 240
    with pytest.raises(ValueError, match="role"):
        MessageView("system")


def test_main_screen_80x24(snap_compare, settings: Settings, tmp_path: Path, fake_embedder, fake_generator) -> None:
    fake_generator.enqueue(REPLY)
    backend = make_backend(settings, tmp_path, fake_embedder, fake_generator)
    try:
        assert snap_compare(TesseraApp(backend, session="s1"), terminal_size=(80, 24), run_before=lambda pilot: ask(pilot, QUESTION))
    finally:
        backend.close()


def test_main_screen_120x35(snap_compare, settings: Settings, tmp_path: Path, fake_embedder, fake_generator) -> None:
    fake_generator.enqueue(REPLY)
    backend = make_backend(settings, tmp_path, fake_embedder, fake_generator)
    try:
        assert snap_compare(TesseraApp(backend, session="s1"), terminal_size=(120, 35), run_before=lambda pilot: ask(pilot, QUESTION))
    finally:
        backend.close()


async def test_an_answer_no_source_supports_is_shown_unverified_not_as_an_abstention(
    settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    fake_generator.enqueue("It was painted green in 1999.")  # no marker, and no source says so
    backend = make_backend(settings, tmp_path, fake_embedder, fake_generator)
    app = TesseraApp(backend, session="s1")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await ask(pilot, QUESTION)
            (view,) = [v for v in app.query(MessageView) if v.role == "assistant"]
            assert "⚠ Unverified: no source supports this answer (2 passages searched)." in str(view.content)
            assert not view.has_class("abstained") and "none held the answer" not in str(view.content)
    finally:
        backend.close()


async def test_keyboard_reaches_a_source_in_one_key_and_every_overlay_gives_typing_back(backend: ChatBackend) -> None:
    app = TesseraApp(backend, session="s1")
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, QUESTION)
        await pilot.press("ctrl+o")  # the sources, first one highlighted
        options = app.query_one("#source-list", OptionList)
        assert app.focused is options and options.highlighted == 0
        await pilot.press("enter")
        assert "1,642 metres deep" in str(app.query_one("#passage", Static).content)
        await pilot.press("escape")  # back to the question
        assert app.focused is app.query_one("#question", Input)
        options.focus()
        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.screen is not app.screen_stack[0])
        await pilot.press("escape")  # the command palette closes...
        await until(pilot, lambda: app.screen is app.screen_stack[0])
        await pilot.pause()
        assert app.focused is app.query_one("#question", Input)  # ...and the next keys are a question
        await pilot.press(*"next")
        assert app.query_one("#question", Input).value == "next"


async def test_the_conversation_stays_at_its_newest_message_after_a_resize(
    settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    for _ in range(6):
        fake_generator.enqueue(REPLY)
    backend = make_backend(settings, tmp_path, fake_embedder, fake_generator)
    try:
        app = TesseraApp(backend, session="s1")
        async with app.run_test(size=(120, 35)) as pilot:
            for n in range(6):
                await ask(pilot, f"{QUESTION} ({n})")
            pane = app.query_one("#conversation")
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            await pilot.pause()
            assert pane.max_scroll_y > 0 and pane.scroll_y == pane.max_scroll_y
    finally:
        backend.close()
