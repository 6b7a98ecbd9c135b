"""The SQLite record of memory: exchanges, units (with their vectors and cluster) and associations.

The vector store only finds units; this file is the record of truth for what a user said, so memory
survives restarts, sessions can be listed, and forgetting a user or session knows what to delete. Unit
vectors are kept here too, so re-clustering a user's memories never re-embeds them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from assistant.types import Exchange, MemoryUnit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    session TEXT NOT NULL,
    granularity TEXT NOT NULL,
    text TEXT NOT NULL,
    turn_ids TEXT NOT NULL,
    created_at REAL NOT NULL,
    cluster INTEGER,
    vector BLOB
);
CREATE INDEX IF NOT EXISTS units_user ON units(user, session, granularity);
CREATE TABLE IF NOT EXISTS exchanges (
    user TEXT NOT NULL,
    session TEXT NOT NULL,
    turn_id TEXT PRIMARY KEY,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS exchanges_session ON exchanges(user, session, created_at);
CREATE TABLE IF NOT EXISTS links (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));
CREATE INDEX IF NOT EXISTS links_b ON links(b);
"""
_UNIT_COLUMNS = "id, granularity, text, session, turn_ids, created_at, user"


class SessionInfo(NamedTuple):
    """One session of a user: its id, first and last exchange times and number of exchanges."""

    session: str
    first_at: float
    last_at: float
    turns: int


class UnitKey(NamedTuple):
    """Where a unit belongs: its id, user and session, and whether its vector is recorded."""

    id: str
    user: str
    session: str
    has_vector: bool


class MemoryRecords:
    """SQLite (WAL mode) record of every user's memory. Use as a context manager.

    Args:
        path: The database file; its folder is created if missing.
    """

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()  # one connection shared by the web app's threads

    def add_exchange(self, user: str, session: str, turn_id: str, exchange: Exchange, created_at: float) -> None:
        """Records one exchange of a session."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?, ?, ?, ?)",
                (user, session, turn_id, exchange.question, exchange.answer, created_at),
            )

    def exchanges(self, user: str, session: str) -> list[Exchange]:
        """A session's exchanges, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT question, answer FROM exchanges WHERE user = ? AND session = ? ORDER BY created_at, rowid",
                (user, session),
            ).fetchall()
        return [Exchange(q, a) for q, a in rows]

    def sessions(self, user: str) -> list[SessionInfo]:
        """The user's sessions, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT session, MIN(created_at), MAX(created_at), COUNT(*) FROM exchanges WHERE user = ? "
                "GROUP BY session ORDER BY MIN(created_at), session",
                (user,),
            ).fetchall()
        return [SessionInfo(*row) for row in rows]

    def put_units(self, units: Sequence[MemoryUnit], vectors: np.ndarray | None = None) -> None:
        """Writes units (replacing any with the same id, e.g. a session's summary), with their vectors.

        Raises:
            ValueError: ``vectors`` does not have one row per unit.
        """
        if vectors is not None and len(vectors) != len(units):
            raise ValueError(f"put_units got {len(units)} units but {len(vectors)} vectors")
        blobs = [None] * len(units) if vectors is None else [np.asarray(v, np.float32).tobytes() for v in vectors]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                [
                    (u.id, u.user_id, u.session_id, u.granularity, u.text, json.dumps(u.turn_ids), u.created_at, b)
                    for u, b in zip(units, blobs)
                ],
            )

    def units(
        self,
        user: str,
        session: str | None = None,
        granularity: str | None = None,
        *,
        ids: Iterable[str] | None = None,
    ) -> list[MemoryUnit]:
        """The user's units, oldest first, optionally of one session, one granularity or these ids only."""
        where, args = self._where(user, session)
        if granularity is not None:
            where, args = where + " AND granularity = ?", args + [granularity]
        if ids is not None:
            where, args = _with_ids(where, args, ids)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_UNIT_COLUMNS} FROM units WHERE {where} ORDER BY created_at, rowid", args
            ).fetchall()
        return [MemoryUnit(i, g, t, s, tuple(json.loads(turns)), c, u) for i, g, t, s, turns, c, u in rows]

    def unit_keys(self) -> list[UnitKey]:
        """Every user's units, as `UnitKey`s (for consistency checks: which points the store should hold)."""
        with self._lock:
            rows = self._db.execute("SELECT id, user, session, vector IS NOT NULL FROM units ORDER BY rowid").fetchall()
        return [UnitKey(i, u, s, bool(v)) for i, u, s, v in rows]

    def vectors(
        self, user: str, ids: Iterable[str] | None = None, latest: int | None = None
    ) -> tuple[list[str], np.ndarray]:
        """The ids and vectors (one row each) of the user's units that have one, oldest first.

        Args:
            user: Whose units.
            ids: Only these units.
            latest: Only the most recent this many.
        """
        where, args = "user = ? AND vector IS NOT NULL", [user]
        if ids is not None:
            where, args = _with_ids(where, args, ids)
        limit = "" if latest is None else f" LIMIT {int(latest)}"
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, vector FROM units WHERE {where} ORDER BY created_at DESC, rowid DESC{limit}", args
            ).fetchall()[::-1]
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [r[0] for r in rows], np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def set_clusters(self, clusters: Mapping[str, int]) -> None:
        """Records each unit's association cluster."""
        with self._lock, self._db:
            rows = [(int(c), i) for i, c in clusters.items()]
            self._db.executemany("UPDATE units SET cluster = ? WHERE id = ?", rows)

    def add_links(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Records associations between units (undirected; repeats are ignored)."""
        rows = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
        with self._lock, self._db:
            self._db.executemany("INSERT OR IGNORE INTO links VALUES (?, ?)", sorted(rows))

    def links_of(self, unit_ids: Iterable[str]) -> dict[str, list[str]]:
        """Each given unit's associated unit ids (every given id is a key, maybe with an empty list)."""
        ids = list(dict.fromkeys(unit_ids))
        out: dict[str, list[str]] = {i: [] for i in ids}
        if not ids:
            return out
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT a, b FROM links WHERE a IN ({marks}) UNION SELECT b, a FROM links WHERE b IN ({marks})",
                ids + ids,
            ).fetchall()
        for a, b in sorted(rows):
            out[a].append(b)
        return out

    def forget(self, user: str, session: str | None = None) -> list[str]:
        """Deletes a user's (or one session's) exchanges, units and their links; returns the deleted unit ids."""
        where, args = self._where(user, session)
        with self._lock, self._db:
            ids = [r[0] for r in self._db.execute(f"SELECT id FROM units WHERE {where}", args)]
            chosen = f"(SELECT id FROM units WHERE {where})"
            self._db.execute(f"DELETE FROM links WHERE a IN {chosen} OR b IN {chosen}", args + args)
            self._db.execute(f"DELETE FROM units WHERE {where}", args)
            self._db.execute(f"DELETE FROM exchanges WHERE {where}", args)
        return ids

    def close(self) -> None:
        """Closes the database connection."""
        self._db.close()

    def __enter__(self) -> MemoryRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _where(user: str, session: str | None) -> tuple[str, list[str]]:
        return ("user = ?", [user]) if session is None else ("user = ? AND session = ?", [user, session])


def _with_ids(where: str, args: list[str], ids: Iterable[str]) -> tuple[str, list[str]]:
    wanted = list(dict.fromkeys(ids))
    return where + f" AND id IN ({','.join('?' * len(wanted))})", args + wanted
