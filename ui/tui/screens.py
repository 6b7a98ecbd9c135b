"""The terminal chat's modal screens: the session list and the ingest prompt."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from assistant.backend import SessionSummary

NEW_SESSION = ""
"""What `SessionListScreen` dismisses with to start a new session (session ids are never empty)."""


class SessionListScreen(ModalScreen[str | None]):
    """Lists the user's sessions; dismisses with the chosen id, `NEW_SESSION`, or None (Esc).

    Args:
        sessions: The sessions, oldest first.
        current: The session id shown now (marked in the list).
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, sessions: Sequence[SessionSummary], current: str) -> None:
        super().__init__()
        self.sessions, self.current = list(sessions), current

    def compose(self) -> ComposeResult:
        options = [Option(Content.styled("+ New session", "bold"), id="new")]
        options += [Option(Content(s.label(s.id == self.current)), id=f"s:{s.id}") for s in self.sessions]
        with Vertical(classes="dialog"):
            yield Label("Sessions", classes="dialog-title")
            yield OptionList(*options, id="session-list")
            yield Label("Enter to open · Esc to close", classes="dialog-hint")

    @on(OptionList.OptionSelected, "#session-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        chosen = event.option.id or "new"
        self.dismiss(NEW_SESSION if chosen == "new" else chosen.removeprefix("s:"))


class IngestScreen(ModalScreen[str | None]):
    """Asks for a file or folder to ingest; dismisses with the path, or None (Esc)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Ingest files", classes="dialog-title")
            yield Input(placeholder="a file or folder, e.g. ~/notes", id="ingest-path")
            yield Label("Enter to ingest · Esc to cancel", classes="dialog-hint")

    @on(Input.Submitted, "#ingest-path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.dismiss(event.value.strip())
