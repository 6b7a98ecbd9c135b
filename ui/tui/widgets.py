"""The terminal chat's widgets: a message, the sources pane and the trace view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from assistant.render import support_notes
from assistant.types import Answer, Hit

SOURCES_HINT = "Ask a question: the passages its answer cites appear here."


class MessageView(Static):
    """One message: the user's question, or the assistant's answer as it streams in.

    Args:
        role: ``"user"`` or ``"assistant"``.
        text: The text so far (a question, or nothing for an answer about to stream).
        answer: A finished answer to show at once (a session's earlier exchange).
    """

    class Selected(Message):
        """An answered message was clicked: the app shows its sources and trace."""

        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, role: str, text: str = "", *, answer: Answer | None = None) -> None:
        if role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', got {role!r}")
        super().__init__(classes=role)
        self.role, self.text = role, text
        self.answer: Answer | None = None
        self.done = role == "user"
        if answer is not None:
            self.finish(answer)
        else:
            self._render_text()

    def append(self, piece: str) -> None:
        """Adds a streamed piece (ignored once the message is finished or cancelled)."""
        if not self.done:
            self.text += piece
            self._render_text()

    def finish(self, answer: Answer) -> None:
        """Shows the final answer: its text with ``[n]`` markers, its sources, unsupported sentences."""
        if self.done:
            return
        self.done, self.answer, self.text = True, answer, answer.text
        self.set_class(answer.abstained, "abstained")
        lines = [Content(answer.text)]
        if answer.citations:
            sources = "  ".join(f"[{c.n}] {c.hit.location}" for c in answer.citations)
            lines.append(Content.styled(f"Sources: {sources}", "dim"))
        elif answer.abstained:
            why = f"searched {len(answer.contexts)} passages; none held the answer" if answer.contexts else "nothing is indexed yet: ctrl+p → Ingest files…"
            lines.append(Content.styled(f"({why})", "dim"))
        lines += [Content.styled(note, "$text-warning" if note.startswith("⚠") else "dim") for note in support_notes(answer)]
        self.update(Content("\n").join(lines))

    def cancel(self) -> None:
        """Marks an unfinished answer as cancelled."""
        self._stop("(cancelled)", "cancelled")

    def fail(self, reason: str) -> None:
        """Marks an unfinished answer as failed, saying why."""
        self._stop(f"(error: {reason})", "failed")

    def _stop(self, note: str, css_class: str) -> None:
        if not self.done:
            self.done = True
            self.add_class(css_class)
            self.update(Content.assemble(self.text, " " if self.text else "", (note, "italic $text-muted")))

    def _render_text(self) -> None:
        if self.role == "user":
            self.update(Content.assemble(("› ", "bold $accent"), (self.text, "bold")))
        else:
            self.update(Content.assemble(self.text, ("▌" if self.text else "thinking…", "$text-muted")))

    def on_click(self) -> None:
        if self.answer is not None:
            self.post_message(self.Selected(self))


class SourcesPane(Vertical):
    """The cited sources of one answer; Enter or a click on one shows its full passage below."""

    BORDER_TITLE = "Sources"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hits: list[tuple[int, Hit]] = []

    def compose(self) -> ComposeResult:
        yield OptionList(id="source-list")
        with VerticalScroll(id="source-detail"):
            yield Static(SOURCES_HINT, id="passage", markup=False)

    def show(self, answer: Answer | None) -> None:
        """Lists the answer's citations (or clears the pane for None)."""
        self.hits = [(c.n, c.hit) for c in answer.citations] if answer else []
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(Content(f"[{n}] {hit.location}")) for n, hit in self.hits])
        if answer is None:
            hint = SOURCES_HINT
        elif self.hits:
            hint = "Enter or click a source to read its passage."
        else:
            hint = "This answer cites no sources."
        self.query_one("#passage", Static).update(hint)

    @on(OptionList.OptionSelected, "#source-list")
    def _open(self, event: OptionList.OptionSelected) -> None:
        n, hit = self.hits[event.option_index]
        title = f"[{n}] {hit.location}" + (f" — {hit.title}" if hit.title and hit.title not in hit.location else "")
        self.query_one("#passage", Static).update(Content.assemble((title, "bold"), "\n", hit.text))
        self.query_one("#source-detail").scroll_home(animate=False)


class TraceView(VerticalScroll):
    """The stages of one answer's trace: name, seconds and the details worth reading (wrapped)."""

    BORDER_TITLE = "Trace"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: list[tuple[str, str, str]] = []

    def compose(self) -> ComposeResult:
        yield Static("No answer yet.", id="trace-table")

    def show(self, answer: Answer | None) -> None:
        """Lists the stages of ``answer``'s trace (unit ids shown as their file names)."""
        names = {h.unit_id: Path(h.source).name for h in answer.contexts} if answer else {}
        stages = answer.trace.stages if answer else []
        self.rows = [(s.name, f"{s.seconds:.3f}", summarise(s.details, names)) for s in stages]
        table = Table("stage", "s", "details", box=None, expand=True, padding=(0, 1, 0, 0), header_style="bold")
        table.columns[0].no_wrap, table.columns[1].justify, table.columns[2].ratio = True, "right", 1
        for row in self.rows:
            table.add_row(*row)
        self.query_one("#trace-table", Static).update(table if self.rows else "No answer yet.")


def summarise(details: dict[str, Any], names: dict[str, str] | None = None, width: int = 240) -> str:
    """One line for a stage's details: lists joined, unit ids named, long values shortened."""
    names = names or {}

    def short(value: Any) -> str:
        if isinstance(value, dict):
            return names.get(value.get("unit_id"), "") or ", ".join(map(str, value))
        if isinstance(value, (list, tuple)):
            return " | ".join(short(v) for v in value) if value else "—"
        if isinstance(value, float):
            return f"{value:.3g}"
        text = " ".join(str(value).split())
        return names.get(text, text)

    line = "; ".join(f"{key}: {short(value)}" for key, value in details.items())
    return line if len(line) <= width else line[: width - 1] + "…"
