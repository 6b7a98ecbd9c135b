"""The composition root of a chatting process: one process's Tessera, per-user chats. Both chat UIs (Textual,
Gradio), the plain REPL, `tessera ask --session` and the injection study stand on it.

One `ChatBackend` per process owns the assistant (models loaded once, the embedded shard locked once), the
memory, and the docstore for ingesting and listing documents. A process that serves chats for a while (the web
app, the chat) calls `claim` first: it then owns the home until it closes, and every other process that needs
the index or the memory gets a clear "another Tessera process (pid N) is using ..." error. UIs stay thin: they call these methods and
render `Answer`/`Trace` objects.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.assistant import Assistant
from assistant.chat import ChatSession
from assistant.config import Settings

log = logging.getLogger(__name__)


class ChatBackend:
    """Chats, sessions and documents for one Tessera home.

    Args:
        settings: Tessera's settings.
        assistant: A ready assistant (tests pass one with fake models); built from the settings if None.
        memory: The memory (tests pass one); opened from the settings if None and ``memory.enabled``.
    """

    def __init__(self, settings: Settings, *, assistant: Assistant | None = None, memory: Any = None) -> None:
        self.settings = settings
        self.assistant = assistant or Assistant(settings)
        self._memory = memory
        self._chats: dict[tuple[str, str], ChatSession] = {}
        self._lock = threading.RLock()  # the web app serves several sessions from threads

    @property
    def memory(self) -> Any:
        """The long-term memory, opened on first use (None when ``memory.enabled`` is false)."""
        with self._lock:
            if self._memory is None and self.settings.memory.enabled:
                from memory import Memory, MemoryRecords
                from memory.storage import memory_store, records_path

                store = memory_store(self.settings)
                records = MemoryRecords(records_path(self.settings))
                self._memory = Memory(
                    self.settings, self.assistant.embedder, store, records, generator=lambda: self.assistant.generator
                )
            return self._memory

    def claim(self) -> None:
        """Takes this home for this process: opens the index and memory shards, creating them if missing.

        One process owns a home's embedded shards at a time (Qdrant Edge locks their write-ahead logs). A
        long-running process (the web app, the chat) claims the home when it starts, so any other process
        that needs the index fails at once with a clear `StoreError` instead of this one failing later.
        Calling it again is a no-op; a Qdrant server needs no claim but is checked the same way.

        Raises:
            StoreError: Another process holds a shard (the message names its pid and what to do).
        """
        with self._lock:
            dimension = self.assistant.embedder.dimension
            self.assistant.store.ensure(dimension)
            if self.memory is not None:
                self.memory.store.ensure(dimension)

    def warm_up(self) -> threading.Thread:
        """Loads the models in a background thread, so the first question does not wait for them.

        A failure is only logged here: the first question meets it again and shows its message.
        """

        def run() -> None:
            try:
                self.assistant.warm_up()
            except Exception as exc:  # noqa: BLE001 - reported when the user asks
                log.info("warm-up failed (the first question will say why): %s", exc)

        thread = threading.Thread(target=run, name="warm-up", daemon=True)
        thread.start()
        return thread

    def chat(self, user: str = "default", session: str | None = None) -> ChatSession:
        """The chat for (user, session); a new session id when ``session`` is None."""
        session = session or new_session_id()
        with self._lock:
            key = (user, session)
            if key not in self._chats:
                self._chats[key] = ChatSession(self.assistant, self.memory, user=user, session=session)
            return self._chats[key]

    def sessions(self, user: str = "default") -> list[str]:
        """The user's sessions, oldest first: those in memory, then ones opened in this process."""
        known = [s[0] for s in self.memory.sessions(user)] if self.memory is not None else []
        opened = [s for (u, s) in self._chats if u == user and s not in known]
        return known + opened

    def session_summaries(self, user: str = "default") -> list[SessionSummary]:
        """The user's sessions (as `sessions`), each titled by its first question, with when it started."""
        summaries = []
        started = {s.session: s.first_at for s in self.memory.sessions(user)} if self.memory is not None else {}
        for session in self.sessions(user):
            chat = self._chats.get((user, session))
            if chat is not None and chat.exchanges:
                first = chat.exchanges[0][0]
            elif self.memory is not None and (earlier := self.memory.records.exchanges(user, session)[:1]):
                first = earlier[0].question
            else:
                first = ""
            summaries.append(SessionSummary(session, _title(first), started.get(session)))
        return summaries

    def transcript(self, user: str, session: str) -> list[tuple[str, str]]:
        """A session's ``(question, answer)`` pairs, oldest first: this process's, else memory's."""
        chat = self._chats.get((user, session))
        if chat is not None and chat.exchanges:
            return [(question, answer.text) for question, answer in chat.exchanges]
        if self.memory is not None:
            return [(e.question, e.answer) for e in self.memory.records.exchanges(user, session)]
        return []

    def ingest(self, paths: Sequence[Path], *, progress: bool = True) -> Any:
        """Ingests files and folders into the index; returns the `IngestReport`."""
        from ingestion.docstore import DocStore
        from ingestion.pipeline import Ingestor
        from ingestion.propositions import build_extractor

        with self._lock, DocStore(self.settings.docstore_path) as docstore:
            a = self.assistant
            ingestor = Ingestor(self.settings, a.embedder, a.store, docstore, build_extractor(self.settings))
            return ingestor.ingest_paths(list(paths), progress=progress)

    def documents(self) -> list[Any]:
        """The indexed documents (`DocumentRecord`s), by source path."""
        from ingestion.docstore import DocStore

        with DocStore(self.settings.docstore_path) as docstore:
            return docstore.documents()

    def forget_document(self, source: str) -> bool:
        """Removes a document from the index; False if it was not indexed."""
        from ingestion.docstore import DocStore
        from ingestion.pipeline import Ingestor

        with self._lock, DocStore(self.settings.docstore_path) as docstore:
            return Ingestor(self.settings, self.assistant.embedder, self.assistant.store, docstore).forget(source)

    def close(self) -> None:
        """Releases the stores (the embedded shard locks)."""
        if self._memory is not None:
            self._memory.close()
        self.assistant.close()


@dataclass(frozen=True)
class SessionSummary:
    """A session as a list shows it: its id, its first question ("" before one) and when it started."""

    id: str
    title: str
    started: float | None = None

    def label(self, current: bool = False) -> str:
        """"Dec 06 14:05  How deep is Lake Baikal?  (current)": when, the first question (the id if none)."""
        when = time.strftime("%b %d %H:%M", time.localtime(self.started)) if self.started else "now"
        return f"{when}  {self.title or f'(no questions yet) {self.id}'}" + ("  (current)" if current else "")


def _title(question: str, width: int = 48) -> str:
    text = " ".join(question.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def new_session_id() -> str:
    """A short, unique session id."""
    return uuid.uuid4().hex[:8]
