"""A conversation: one user's session, with memory, over the `Assistant`. The CLI, the REPL and both UIs
talk to this, so a turn means the same everywhere.

A turn: recall the user's memory (all their sessions) → rewrite the question with this session's recent
exchanges → retrieve, order, generate with the recalled "conversation so far" block → remember the
exchange (a memory failure is reported, never costs the answer, and the exchange is retried next turn). Without memory (``memory.enabled = false``) the session keeps its exchanges in process only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from assistant.types import Answer, Exchange, Trace, TurnEvent, final_answer

if TYPE_CHECKING:
    from assistant.assistant import Assistant
    from memory import Memory

log = logging.getLogger(__name__)


class ChatSession:
    """One user's session.

    Args:
        assistant: Answers the questions.
        memory: The user's long-term memory; None keeps history in this object only.
        user: Whose conversation it is; memory never crosses users.
        session: The session id (a new id starts a new session that still recalls earlier ones).
    """

    def __init__(self, assistant: Assistant, memory: Memory | None, *, user: str = "default", session: str = "default") -> None:
        if not user.strip() or not session.strip():
            raise ValueError("a chat needs a non-empty user and session id")
        self.assistant = assistant
        self.memory = memory
        self.user = user
        self.session = session
        self.exchanges: list[tuple[str, Answer]] = []
        self.memory_error: str | None = None
        """Why the last exchange could not be saved to memory, or None."""
        self._unsaved: list[Exchange] = []

    def stream(self, question: str) -> Iterator[TurnEvent]:
        """Yields the turn's events (see `Assistant.stream`), ending with the answer, and remembers it."""
        trace = Trace()
        settings = self.assistant.settings.memory
        block, relevant = "", ()
        if self.memory is not None:
            recalled = self.memory.recall(self.user, self.session, question, trace)
            block = self.memory.context_block(recalled, settings.budget_tokens)
            relevant = recalled.relevant(self.memory.min_similarity) if block else ()
            history = self.memory.history(self.user, self.session)
        else:
            recent = self.exchanges[-settings.recent_exchanges :] if settings.recent_exchanges else []
            history = [Exchange(q, a.text) for q, a in recent]
        for event in self.assistant.stream(question, history=history, conversation=block, recalled=relevant, trace=trace):
            if event.answer is not None:
                self.exchanges.append((question, event.answer))
                self._remember(Exchange(question, event.answer.text), event.answer.trace)
            yield event

    def _remember(self, exchange: Exchange, trace: Trace) -> None:
        """Stores the exchange (and any an earlier failure left unsaved) in memory.

        A failure here (embedding, clustering, a full disk) must not cost the user the answer already
        generated: it is logged, recorded in the trace's ``remember`` stage and in `memory_error`, and the
        exchange is retried with the next question.
        """
        self.memory_error = None
        if self.memory is None:
            return
        self._unsaved.append(exchange)
        with trace.stage("remember", exchanges=len(self._unsaved)) as info:
            while self._unsaved:
                try:
                    self.memory.remember(self.user, self.session, self._unsaved[0])
                except Exception as exc:  # noqa: BLE001 - reported, and retried next turn
                    self.memory_error = f"{type(exc).__name__}: {exc}"
                    info.update(error=self.memory_error, unsaved=len(self._unsaved))
                    log.warning("could not save the exchange to memory (retried with the next question): %s", exc)
                    return
                self._unsaved.pop(0)

    def ask(self, question: str) -> Answer:
        """Answers one question (the last event of `stream`)."""
        return final_answer(self.stream(question))
