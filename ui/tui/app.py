"""`TesseraApp`: the terminal chat. A conversation pane, the sources (or trace) of the selected answer,
an input; answers stream in from a thread worker so the UI never blocks, and Esc cancels them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Container, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList
from textual.worker import Worker, get_current_worker

from assistant.chat import ChatSession
from assistant.types import Answer
from assistant.backend import ChatBackend
from ui.tui.screens import NEW_SESSION, IngestScreen, SessionListScreen
from ui.tui.widgets import MessageView, SourcesPane, TraceView


class TesseraCommands(Provider):
    """The command palette's Tessera commands."""

    def _commands(self) -> list[tuple[str, Any, str]]:
        app = self.app
        assert isinstance(app, TesseraApp)
        return [
            ("Ingest files…", app.action_ingest, "Index a file or folder of documents"),
            ("New session", app.action_new_session, "Start an empty conversation"),
            ("Sessions…", app.action_sessions, "Switch to another session"),
            ("Toggle trace", app.action_toggle_trace, "Show what each stage of the answer did"),
            ("Open sources", app.action_sources, "Move to the answer's sources (Enter opens one)"),
        ]

    async def discover(self) -> Hits:
        for name, command, help in self._commands():
            yield DiscoveryHit(name, command, help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, command, help in self._commands():
            if (score := matcher.match(name)) > 0:
                yield Hit(score, matcher.highlight(name), command, help=help)


class ChatScreen(Screen[None]):
    """The main screen. Whenever an overlay closes (command palette, sessions, ingest) typing goes back to
    the question box, so the next question is never typed into the sources list."""

    def on_screen_resume(self) -> None:
        self.query_one("#question", Input).focus()

    def on_resize(self) -> None:
        """After a resize the conversation still shows its newest message."""
        self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)


class TesseraApp(App[None]):
    """The Tessera terminal chat.

    Args:
        backend: The process's chats, sessions and documents.
        user: Whose conversations these are.
        session: The session to open; a new one if None.
    """

    CSS_PATH = "tessera.tcss"
    TITLE = "Tessera"
    COMMANDS = App.COMMANDS | {TesseraCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("ctrl+n", "new_session", "New"),
        Binding("ctrl+s", "sessions", "Sessions"),
        Binding("ctrl+t", "toggle_trace", "Trace"),
        Binding("ctrl+o", "sources", "Sources"),
        Binding("escape", "cancel", "Cancel/back"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, backend: ChatBackend, *, user: str = "default", session: str | None = None) -> None:
        super().__init__()
        self.backend, self.user = backend, user
        self.chat: ChatSession = backend.chat(user, session)
        self._generation: Worker[None] | None = None
        self._streaming: MessageView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Container(id="body"):
            yield VerticalScroll(id="conversation")
            with Vertical(id="side"):
                yield SourcesPane(id="sources")
                yield TraceView(id="trace")
        yield Input(placeholder="Ask about your documents…", id="question")
        yield Footer()

    def get_default_screen(self) -> Screen[None]:
        return ChatScreen(id="_default")

    def on_mount(self) -> None:
        self._show_chat(self.chat)
        self.query_one("#question").focus()
        self.backend.warm_up()  # the models load while the user types the first question

    @property
    def generating(self) -> bool:
        """True while an answer is being generated."""
        return self._generation is not None and not self._generation.is_finished

    def _main(self, selector: str, kind: type[Any]) -> Any:
        """A widget of the main screen (even while a modal screen is on top)."""
        return self.screen_stack[0].query_one(selector, kind)

    def _show_chat(self, chat: ChatSession) -> None:
        """Shows ``chat``: its id in the header, its exchanges in the conversation pane."""
        self.chat = chat
        self.sub_title = f"session {chat.session} · {chat.user}"
        pane = self._main("#conversation", VerticalScroll)
        pane.remove_children()
        for question, answer in chat.exchanges:
            pane.mount(MessageView("user", question), MessageView("assistant", answer=answer))
        pane.scroll_end(animate=False)
        self._show_answer(chat.exchanges[-1][1] if chat.exchanges else None)

    def _show_answer(self, answer: Answer | None) -> None:
        self._main("#sources", SourcesPane).show(answer)
        self._main("#trace", TraceView).show(answer)

    @on(Input.Submitted, "#question")
    def _ask(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        if self.generating:
            self.notify("Still answering: wait, or press Esc to cancel.", severity="warning")
            return
        event.input.clear()
        self._streaming = MessageView("assistant")
        pane = self._main("#conversation", VerticalScroll)
        pane.mount(MessageView("user", question), self._streaming)
        pane.scroll_end(animate=False)
        self._generation = self._generate(self.chat, question, self._streaming)

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate(self, chat: ChatSession, question: str, view: MessageView) -> None:
        """Streams the answer into ``view``; stops between pieces once cancelled."""
        worker = get_current_worker()
        stream = chat.stream(question)
        try:
            for event in stream:
                if worker.is_cancelled:
                    break
                if event.answer is not None:
                    self.call_from_thread(self._answered, view, event.answer)
                elif event.text:
                    self.call_from_thread(view.append, event.text)
        except Exception as exc:  # a model or store failure ends this answer, not the app
            if not worker.is_cancelled:
                self.call_from_thread(view.fail, f"{type(exc).__name__}: {exc}")
        finally:
            stream.close()

    def _answered(self, view: MessageView, answer: Answer) -> None:
        view.finish(answer)
        if view.is_attached:
            self._show_answer(answer)
            self._main("#conversation", VerticalScroll).scroll_end(animate=False)

    @on(MessageView.Selected)
    def _selected(self, event: MessageView.Selected) -> None:
        self._show_answer(event.view.answer)

    def action_cancel(self) -> None:
        """Cancels the running generation (its message shows "(cancelled)"); otherwise goes back to the question."""
        if self.generating and self._generation is not None and self._streaming is not None:
            self._generation.cancel()
            self._streaming.cancel()
        else:
            self._main("#question", Input).focus()

    def action_new_session(self) -> None:
        """Starts a new, empty session."""
        self.action_cancel()
        self._show_chat(self.backend.chat(self.user))

    def action_sessions(self) -> None:
        """Lists the user's sessions to switch to one."""

        def chosen(session: str | None) -> None:
            if session == NEW_SESSION:
                self.action_new_session()
            elif session is not None and session != self.chat.session:
                self.action_cancel()
                self._show_chat(self.backend.chat(self.user, session))

        self.push_screen(SessionListScreen(self.backend.session_summaries(self.user), self.chat.session), chosen)

    def action_sources(self) -> None:
        """Moves to the sources list, first source highlighted: Enter opens it, Esc (or any overlay) returns."""
        self._main("#side", Vertical).remove_class("-trace")
        options = self._main("#source-list", OptionList)
        if options.option_count:
            options.focus()
            options.highlighted = options.highlighted or 0
        else:
            self.notify("No sources to open yet: ask a question first.")

    def action_toggle_trace(self) -> None:
        """Switches the side pane between the sources and the trace."""
        self._main("#side", Vertical).toggle_class("-trace")

    def action_ingest(self) -> None:
        """Asks for a path and ingests it in the background."""
        self.push_screen(IngestScreen(), lambda path: self._ingest(path) if path else None)

    @work(thread=True, group="ingest", exit_on_error=False)
    def _ingest(self, path: str) -> None:
        target = Path(path).expanduser()
        if not target.exists():
            self.call_from_thread(self.notify, f"No such file or folder: {target}", title="Ingest", severity="error")
            return
        try:
            report = self.backend.ingest([target], progress=False)
        except Exception as exc:  # report it; the chat goes on
            self.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title="Ingest failed", severity="error")
            return
        self.call_from_thread(
            self.notify,
            ingest_summary(report),
            title=f"Ingest · {report.passages} passages, {report.propositions} propositions",
            severity="warning" if report.failed else "information",
        )


def ingest_summary(report: Any) -> str:
    """``ingested N, unchanged M, failed K: reasons`` for an `IngestReport`."""
    line = f"ingested {len(report.ingested)}, unchanged {len(report.unchanged)}, failed {len(report.failed)}"
    if report.failed:
        line += ": " + "; ".join(f"{Path(path).name}: {reason}" for path, reason in report.failed)
    return line
