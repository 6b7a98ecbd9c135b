"""Where a home keeps its memory: one definition for every process that opens it (the chat backend, the
doctor, the memory evaluation)."""

from __future__ import annotations

from pathlib import Path

from assistant.config import Settings
from retrievers.store import EdgeStore, Store, open_store


def records_path(settings: Settings) -> Path:
    """The SQLite file of exchanges, units and associations."""
    return settings.memory_path / "records.sqlite3"


def shard_path(settings: Settings) -> Path:
    """The embedded Qdrant shard of memory units (when no server is configured)."""
    return settings.memory_path / "qdrant"


def memory_store(settings: Settings) -> Store:
    """The memory units' vector store: ``<collection>-memory`` on a Qdrant server when ``store.qdrant_url`` is
    set, else an embedded shard in the home, apart from the document index."""
    if settings.store.qdrant_url:
        store = settings.store.model_copy(update={"collection": f"{settings.store.collection}-memory"})
        return open_store(settings.model_copy(update={"store": store}))
    return EdgeStore(shard_path(settings), "memory")
