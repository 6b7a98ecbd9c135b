"""The SQLite docstore: which documents are indexed, their content hashes and their passages.

Vectors live in Qdrant; this file is the record of truth for *what* was ingested, so re-ingesting an
unchanged file can be skipped and a changed one replaced.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.types import Document, Passage, Proposition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    ingested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    id TEXT PRIMARY KEY,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    page INTEGER,
    heading TEXT
);
CREATE INDEX IF NOT EXISTS passages_doc ON passages(doc_id, idx);
CREATE TABLE IF NOT EXISTS propositions (
    id TEXT PRIMARY KEY,
    passage_id TEXT NOT NULL,
    doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS propositions_doc ON propositions(doc_id, idx);
"""


@dataclass(frozen=True)
class DocumentRecord:
    """A row of the documents table, with its passage and proposition counts."""

    id: str
    source: str
    title: str
    content_hash: str
    ingested_at: float
    passages: int
    propositions: int


class DocStore:
    """SQLite (WAL mode) store of documents and passages.

    Args:
        path: The database file; its folder is created if missing.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is consistent in WAL mode; a commit lost to a power cut only makes the next ingest redo
        # that document (its points are published before its record is written).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def content_hash(self, source: str) -> str | None:
        """The stored content hash of ``source``, or None if it was never ingested."""
        row = self._db.execute("SELECT content_hash FROM documents WHERE source = ?", (source,)).fetchone()
        return row[0] if row else None

    def put(
        self,
        document: Document,
        content_hash: str,
        passages: Sequence[Passage],
        propositions: Sequence[Proposition] = (),
    ) -> None:
        """Replaces a document, its passages and its propositions in one transaction."""
        self.put_many([(document, content_hash, passages, propositions)])

    def put_many(
        self, items: Sequence[tuple[Document, str, Sequence[Passage], Sequence[Proposition]]]
    ) -> None:
        """`put` for several documents in one transaction (one commit for a whole ingest batch)."""
        with self._db:
            for document, content_hash, passages, propositions in items:
                self._put(document, content_hash, passages, propositions)

    def _put(
        self, document: Document, content_hash: str, passages: Sequence[Passage], propositions: Sequence[Proposition]
    ) -> None:
        self._db.execute("DELETE FROM documents WHERE id = ? OR source = ?", (document.id, document.source))
        self._db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)",
            (
                document.id,
                document.source,
                document.title,
                content_hash,
                json.dumps(document.metadata),
                time.time(),
            ),
        )
        self._db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(p.id, p.doc_id, i, p.text, p.start, p.end, p.page, p.heading) for i, p in enumerate(passages)],
        )
        self._db.executemany(
            "INSERT INTO propositions VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(p.id, p.passage_id, p.doc_id, i, p.text, p.start, p.end) for i, p in enumerate(propositions)],
        )

    def delete(self, doc_id: str) -> None:
        """Removes a document and its passages."""
        with self._db:
            self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def documents(self) -> list[DocumentRecord]:
        """Every indexed document, by source path."""
        return self._records("", ())

    def _records(self, where: str, args: tuple) -> list[DocumentRecord]:
        rows = self._db.execute(
            "SELECT d.id, d.source, d.title, d.content_hash, d.ingested_at, "
            "(SELECT COUNT(*) FROM passages p WHERE p.doc_id = d.id), "
            "(SELECT COUNT(*) FROM propositions q WHERE q.doc_id = d.id) "
            f"FROM documents d {where} ORDER BY d.source",
            args,
        ).fetchall()
        return [DocumentRecord(*row) for row in rows]

    def unit_ids(self) -> dict[str, set[str]]:
        """Every document's passage and proposition ids (its units in the index), by document id.

        A document without passages maps to an empty set.
        """
        out: dict[str, set[str]] = {row[0]: set() for row in self._db.execute("SELECT id FROM documents")}
        rows = self._db.execute("SELECT doc_id, id FROM passages UNION ALL SELECT doc_id, id FROM propositions")
        for doc_id, unit_id in rows:
            out.setdefault(doc_id, set()).add(unit_id)
        return out

    def find(self, source: str) -> DocumentRecord | None:
        """The record of the document ingested from ``source``, if any."""
        return next(iter(self._records("WHERE d.source = ?", (source,))), None)

    def propositions(self, doc_id: str) -> list[Proposition]:
        """A document's propositions in order."""
        rows = self._db.execute(
            "SELECT id, passage_id, doc_id, text, start, end FROM propositions WHERE doc_id = ? ORDER BY idx",
            (doc_id,),
        ).fetchall()
        return [Proposition(*row) for row in rows]

    def passages(self, doc_id: str) -> list[Passage]:
        """A document's passages in order."""
        rows = self._db.execute(
            "SELECT id, doc_id, text, start, end, page, heading FROM passages WHERE doc_id = ? ORDER BY idx",
            (doc_id,),
        ).fetchall()
        return [Passage(*row) for row in rows]

    def close(self) -> None:
        """Closes the database connection."""
        self._db.close()

    def __enter__(self) -> DocStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
