"""`tessera doctor`: checks that a home's docstore, index and memory agree, and repairs what a crash left.

They are written in steps, each safe to interrupt but not atomic together:

- ingestion writes a document's points ``pending``, publishes them (``ready``), then records the document in
  the docstore (ingestion/pipeline.py). A kill before the record leaves *orphan* points (never searchable
  while pending; complete if published); the next ``tessera ingest`` of the file redoes it anyway.
- memory records a turn's units (with their vectors) in SQLite, then writes their points (memory/memory.py).
  A kill in between leaves recorded units the store cannot find.

| check | finds | ``repair`` |
|---|---|---|
| ``owner`` | an ``owner.pid`` naming a process that no longer holds the shard | nothing to do (warning only) |
| ``index.orphans`` | points whose document has no docstore record (pending ones too) | deletes the points |
| ``index.missing`` | documents whose units and ready points differ | deletes points and record; re-ingest |
| ``memory.missing`` | recorded memory units without a point | rewrites the session's points |
| ``memory.orphans`` | memory points without a record | rewrites the session's points |

Repair never loads a model: memory points are rebuilt from the vectors recorded beside the units, and
documents are handed back to ``tessera ingest`` (their files are the source of truth; a document indexed
from elsewhere, e.g. an eval dataset, is re-indexed by the command that indexed it).

Run it while no other Tessera process uses the home. An embedded home is locked (opening fails with a
`StoreError` that names the holder); a Qdrant server is not, and a running ingest's pending points would
look like orphans there.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from assistant.config import Settings
from assistant.types import MemoryUnit
from ingestion.docstore import DocStore
from memory.memory import SESSION_SEP as MEMORY_SEP  # the memory store's doc_id is f"{user}{SESSION_SEP}{session}"
from memory.records import MemoryRecords, UnitKey
from memory.storage import memory_store, records_path, shard_path
from retrievers.store import OWNER_FILE, PENDING, READY, EdgeStore, Store, StorePoint, open_store

Severity = Literal["error", "warning"]
_SHOWN = 10  # problems listed per check in `Check.describe`


@dataclass(frozen=True)
class Problem:
    """One inconsistency.

    Attributes:
        subject: What is wrong: a document's source, a memory session, an owner file.
        detail: What was found, in words.
    """

    subject: str
    detail: str


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    Attributes:
        name: Its id (``index.orphans``...).
        title: What it checks, in words.
        checked: How many items (points, documents, units, files) it looked at.
        problems: What it found wrong; empty when it passed.
        fix: What ``repair`` does about the problems (or did, in a repair's report).
        severity: ``error`` problems make the home unhealthy; ``warning`` ones are harmless.
        noun: What ``checked`` counts (``points``, ``documents``...).
    """

    name: str
    title: str
    checked: int
    problems: tuple[Problem, ...] = ()
    fix: str = ""
    severity: Severity = "error"
    noun: str = "items"

    @property
    def ok(self) -> bool:
        """True when the check found nothing."""
        return not self.problems

    def describe(self, limit: int = _SHOWN) -> list[str]:
        """The problems as lines, at most ``limit`` of them and a count of the rest."""
        lines = [f"{p.subject}: {p.detail}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        return lines


@dataclass(frozen=True)
class DoctorReport:
    """What `Doctor.check` found (or what `Doctor.repair` fixed).

    Attributes:
        home: The Tessera home checked.
        checks: Every check, in a fixed order.
        reingest: Sources of documents whose records were removed (or would be, by a repair): run
            ``tessera ingest`` on them to index them again.
        repaired: True for the report of a repair.
    """

    home: Path
    checks: tuple[Check, ...]
    reingest: tuple[str, ...] = ()
    repaired: bool = False

    @property
    def healthy(self) -> bool:
        """True when no check of severity ``error`` found a problem."""
        return all(c.ok for c in self.checks if c.severity == "error")

    def check(self, name: str) -> Check:
        """The check called ``name``.

        Raises:
            KeyError: No check has that name.
        """
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; there are {[c.name for c in self.checks]}")


@dataclass
class _Findings:
    """The raw inconsistencies one inspection found (what `repair` acts on)."""

    owners: list[Problem] = field(default_factory=list)
    owner_files: int = 0
    points: int = 0
    documents: int = 0
    orphan_docs: dict[str, list[str]] = field(default_factory=dict)  # doc id -> states of its points
    broken_docs: dict[str, tuple[str, str]] = field(default_factory=dict)  # doc id -> (source, detail)
    memory_units: int = 0
    memory_points: int = 0
    missing_units: list[UnitKey] = field(default_factory=list)
    orphan_units: dict[str, list[str]] = field(default_factory=dict)  # memory doc id -> unit ids


class Doctor:
    """Checks, and on request repairs, the consistency of one Tessera home. Use as a context manager.

    Opens nothing until `check` or `repair` runs, and creates no file in a home that has none.

    Args:
        settings: Whose home (docstore, index and memory paths, or the Qdrant server) to check.
        index: The document index; opened from the settings if None (tests pass a `ClientStore`).
        memory: The memory's vector store; opened like the chat backend opens it if None.
    """

    def __init__(self, settings: Settings, *, index: Store | None = None, memory: Store | None = None) -> None:
        self.settings = settings
        self._index, self._memory = index, memory
        self._owned: list[Store] = []  # stores this doctor opened, closed by `close`

    def check(self) -> DoctorReport:
        """Inspects the home and reports every check.

        Changes nothing, except that opening an embedded shard replaces a stale owner file (as any command does).

        Raises:
            StoreError: Another process holds the embedded shard, or a store cannot be opened.
        """
        return self._report(self._inspect(), repaired=False)

    def repair(self) -> DoctorReport:
        """Fixes what `check` would find; returns what was found and fixed (run `check` again to confirm).

        Index orphans are deleted; documents with missing vectors lose their points and docstore record, so
        the next ``tessera ingest`` of their files indexes them again (their sources are in ``reingest``);
        memory sessions with missing or orphan points get their points rewritten from the recorded vectors.

        Raises:
            StoreError: Another process holds the embedded shard, or a store cannot be opened.
        """
        found = self._inspect()
        index = self._index_store()
        # Points before records (as `Ingestor.forget` does): an interrupted repair leaves orphans, found again.
        index.delete_docs(sorted(found.orphan_docs) + sorted(found.broken_docs))
        if found.broken_docs and self.settings.docstore_path.exists():
            with DocStore(self.settings.docstore_path) as docstore:
                for doc_id in found.broken_docs:
                    docstore.delete(doc_id)
        sessions = {(u.user, u.session) for u in found.missing_units}
        stray = []
        for doc_id in found.orphan_units:
            user, sep, session = doc_id.partition(MEMORY_SEP)
            if sep:
                sessions.add((user, session))
            else:  # not a memory session's point at all: nothing to rebuild
                stray.append(doc_id)
        self._rebuild_memory(sorted(sessions), stray)
        return self._report(found, repaired=True)

    def close(self) -> None:
        """Closes the stores this doctor opened (not ones passed in)."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self) -> Doctor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inspection ------------------------------------------------------------------------------

    def _inspect(self) -> _Findings:
        found = _Findings()
        owners = {p: _read_pid(p / OWNER_FILE) for p in self._edge_paths()}  # before opening: that rewrites them
        self._inspect_index(found)
        if self._memory_present():
            self._inspect_memory(found)
        for path, pid in owners.items():
            if pid is None:
                continue
            found.owner_files += 1
            if pid != os.getpid():  # the shard opened, so its lock was free: the file is stale
                state = "is running but does not hold the shard (a reused pid)" if _running(pid) else "is not running"
                found.owners.append(Problem(str(path / OWNER_FILE), f"names pid {pid}, which {state}"))
        return found

    def _inspect_index(self, found: _Findings) -> None:
        by_doc: dict[str, dict[str, str]] = defaultdict(dict)  # doc id -> unit id -> state
        for point in self._index_store().scan():
            found.points += 1
            by_doc[point.doc_id][point.unit_id] = point.state
        units: dict[str, set[str]] = {}
        sources: dict[str, str] = {}
        if self.settings.docstore_path.exists():  # read after the scan: a record never precedes its points
            with DocStore(self.settings.docstore_path) as docstore:
                units = docstore.unit_ids()
                sources = {r.id: r.source for r in docstore.documents()}
        found.documents = len(units)
        for doc_id, states in by_doc.items():
            if doc_id not in units:
                found.orphan_docs[doc_id] = list(states.values())
        for doc_id, expected in units.items():
            states = by_doc.get(doc_id, {})
            ready = {u for u, s in states.items() if s == READY}
            missing, extra = expected - ready, set(states) - expected
            pending = sum(1 for s in states.values() if s != READY)
            if missing or extra or pending:
                parts = [f"{len(missing)} of {len(expected)} units have no searchable vector"] if missing else []
                parts += [f"{pending} point(s) still pending"] if pending else []
                parts += [f"{len(extra)} point(s) not in its record"] if extra else []
                found.broken_docs[doc_id] = (sources.get(doc_id, doc_id), "; ".join(parts))

    def _inspect_memory(self, found: _Findings) -> None:
        points: dict[str, str] = {}  # unit id -> doc id
        for point in self._memory_store().scan():
            found.memory_points += 1
            points[point.unit_id] = point.doc_id
        keys: list[UnitKey] = []
        if (path := records_path(self.settings)).exists():
            with MemoryRecords(path) as records:
                keys = records.unit_keys()
        found.memory_units = len(keys)
        recorded = {k.id for k in keys}
        found.missing_units = [k for k in keys if k.id not in points]
        for unit_id, doc_id in points.items():
            if unit_id not in recorded:
                found.orphan_units.setdefault(doc_id, []).append(unit_id)

    # -- repair ----------------------------------------------------------------------------------

    def _rebuild_memory(self, sessions: Iterable[tuple[str, str]], stray: list[str]) -> None:
        """Deletes each session's memory points and writes them again from the records' vectors."""
        sessions = list(sessions)
        if not sessions and not stray:
            return
        store = self._memory_store()
        store.delete_docs([f"{user}{MEMORY_SEP}{session}" for user, session in sessions] + stray)
        if not sessions:
            return
        with MemoryRecords(records_path(self.settings)) as records:
            for user, session in sessions:
                units = {u.id: u for u in records.units(user, session)}
                ids, vectors = records.vectors(user, list(units))
                if not ids:
                    continue
                store.ensure(vectors.shape[1])
                store.upsert([_memory_point(units[i], v) for i, v in zip(ids, vectors)])

    # -- reporting -------------------------------------------------------------------------------

    def _report(self, found: _Findings, *, repaired: bool) -> DoctorReport:
        orphans = [
            Problem(doc_id, f"{len(states)} point(s) ({states.count(PENDING)} pending) without a docstore record")
            for doc_id, states in sorted(found.orphan_docs.items())
        ]
        broken = [Problem(source, detail) for source, detail in sorted(found.broken_docs.values())]
        unrestorable = [k for k in found.missing_units if not k.has_vector]
        missing = _by_session(found.missing_units, "recorded unit(s) not in the memory store")
        stray = [
            Problem(_session_name(doc_id), f"{len(ids)} point(s) without a memory record")
            for doc_id, ids in sorted(found.orphan_units.items())
        ]
        done = "deleted" if repaired else "--repair deletes"
        rewrites = "rewrote" if repaired else "--repair rewrites"
        checks = (
            Check("owner", "owner files of the embedded shards", found.owner_files, tuple(found.owners),
                  "nothing to do: the next process to open the shard replaces the file", "warning", "files"),
            Check("index.orphans", "index: documents with points but no docstore record", found.points,
                  tuple(orphans), f"{done} their points (the next `tessera ingest` of their files indexes them again)",
                  noun="points"),
            Check("index.missing", "index: documents whose vectors are missing or unpublished", found.documents,
                  tuple(broken), f"{done} their points and docstore records; then run `tessera ingest` on them",
                  noun="documents"),
            Check("memory.missing", "memory: sessions with recorded units missing from the store", found.memory_units,
                  tuple(missing), f"{rewrites} the session's points from the recorded vectors"
                  + (f" ({len(unrestorable)} unit(s) have no recorded vector: `tessera memory forget --session`"
                     " drops them)" if unrestorable else ""), noun="units"),
            Check("memory.orphans", "memory: sessions with points that have no record", found.memory_points,
                  tuple(stray), f"{rewrites} the session's points from its records",
                  noun="points"),
        )
        reingest = tuple(sorted(source for source, _ in found.broken_docs.values()))
        return DoctorReport(self.settings.home, checks, reingest, repaired)

    # -- stores ----------------------------------------------------------------------------------

    def _index_store(self) -> Store:
        if self._index is None:
            self._index = open_store(self.settings)
            self._owned.append(self._index)
        return self._index

    def _memory_store(self) -> Store:
        if self._memory is None:
            self._memory = memory_store(self.settings)
            # A repair writes recorded vectors back, made by the model whose vectors the store holds (the
            # configured one where it holds none).
            if held := self._memory.values("embedder"):
                self._memory.bind_embedder(held[0])
            elif self._memory.count() == 0:
                from assistant.models.registry import create_embedder

                self._memory.bind_embedder(create_embedder(self.settings).name)
            self._owned.append(self._memory)
        return self._memory

    def _memory_present(self) -> bool:
        """Whether the home may have a memory to check (without creating one)."""
        s = self.settings
        records, shard = records_path(s), shard_path(s)
        return records.exists() or shard.exists() or self._memory is not None or bool(s.store.qdrant_url)

    def _edge_paths(self) -> list[Path]:
        """The embedded shard folders this doctor reads (their owner files are checked)."""
        s, paths = self.settings, []
        for store, default in ((self._index, s.qdrant_path), (self._memory, shard_path(s))):
            if isinstance(store, EdgeStore):
                paths.append(store.path)
            elif store is None and not s.store.qdrant_url:
                paths.append(default)
        return paths


def _memory_point(unit: MemoryUnit, vector: np.ndarray) -> StorePoint:
    """A memory unit's point, with the payload `memory.Memory` writes (kept in step by tests/test_doctor.py)."""
    return StorePoint(unit.id, vector, unit.text, {
        "doc_id": f"{unit.user_id}{MEMORY_SEP}{unit.session_id}", "unit_id": unit.id, "unit": unit.granularity,
        "user": unit.user_id, "session": unit.session_id, "state": READY, "text": unit.text,
        "turn_ids": list(unit.turn_ids), "created_at": unit.created_at,
    })


def _by_session(keys: list[UnitKey], what: str) -> list[Problem]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for k in keys:
        counts[(k.user, k.session)] += 1
    return [Problem(f"user {u!r} session {s!r}", f"{n} {what}") for (u, s), n in sorted(counts.items())]


def _session_name(doc_id: str) -> str:
    user, sep, session = doc_id.partition(MEMORY_SEP)
    return f"user {user!r} session {session!r}" if sep else f"doc_id {doc_id!r}"


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
