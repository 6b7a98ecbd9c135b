"""`Memory`: what the assistant remembers of each user's conversations, across sessions and restarts.

Remembering an exchange writes it at three granularities (turn, keyword fact, session summary), embeds them
into a vector store collection of their own, and re-clusters the user's memories to record associations.
Recalling searches each granularity, lets the entropy router pick the most decisive one, adds associated
units, and optionally lets the generator drop the irrelevant ones (MemGAS).

The composition root opens the store (a dedicated collection) and the records and injects them, so this
package never opens a store itself.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.config import Settings
from assistant.models.base import Embedder, Generator
from assistant.types import Exchange, MemoryUnit, Trace
from memory.association import associate, links_for
from memory.filter import llm_filter
from memory.records import MemoryRecords, SessionInfo
from memory.router import GRANULARITIES, route
from memory.units import extractive_summary, fact_units, llm_keywords, llm_summary, summary_unit, turn_unit

if TYPE_CHECKING:
    from retrievers.store import Store, StoreHit

_LINKS_PER_UNIT = 16  # partners recorded per new unit: bounds the links table as a user's memory grows
# Units re-clustered per turn, the latest: bounds a turn's cost (PCA + up to 8 mixtures on 500 units ≈ 0.1 s);
# older units keep the associations recorded when they were new.
_CLUSTER_WINDOW = 500
SESSION_SEP = "\x1f"  # joins user and session into the memory store's doc_id, so it may appear in neither


@dataclass(frozen=True)
class Recall:
    """What memory recalled for one question.

    Attributes:
        units: The recalled units, most relevant first (associated units after the ones they came with).
        chosen: The granularities the router recalled from.
        entropies: The normalised entropy of each granularity's candidates.
        scores: Each unit's cosine similarity to the question, aligned with ``units``.
    """

    units: tuple[MemoryUnit, ...] = ()
    chosen: tuple[str, ...] = ()
    entropies: dict[str, float] = field(default_factory=dict)
    scores: tuple[float, ...] = ()

    def relevant(self, floor: float) -> tuple[MemoryUnit, ...]:
        """The units at least ``floor`` similar to the question: the ones shown to the model, and evidence an
        answer may rest on."""
        scores = self.scores or (1.0,) * len(self.units)
        return tuple(u for u, score in zip(self.units, scores) if score >= floor)


class Memory:
    """Multi-granularity conversational memory of every user (MemGAS).

    Args:
        settings: Tessera's settings (``memory`` section).
        embedder: Embeds units and queries.
        store: A vector store collection used for memory only (units are searched by user and granularity).
        records: The SQLite record of exchanges, units and associations.
        generator: Writes ``llm`` summaries and facts and runs the LLM filter: a generator, or a callable
            giving one on first use (so a model loads only if needed). Required when any is configured.

    Attributes:
        llm_stats: How often each model-written step (``summary``, ``facts``, ``filter``) gave a usable reply
            (``STEP``) or fell back (``STEP_fallback``): the valid-output rate an evaluation reports.

    Raises:
        ValueError: An LLM step is configured but no generator given.
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: Store,
        records: MemoryRecords,
        generator: Generator | Callable[[], Generator] | None = None,
    ) -> None:
        m = settings.memory
        if generator is None and (m.summaries == "llm" or m.facts == "llm" or m.llm_filter):
            raise ValueError(
                "memory.summaries = 'llm', memory.facts = 'llm' and memory.llm_filter need a generator: pass "
                "generator= to Memory, or set memory.summaries = 'extractive', memory.facts = 'rules' and "
                "memory.llm_filter = false"
            )
        self.llm_stats: Counter[str] = Counter()
        self.settings, self.embedder, self.store, self.records = settings, embedder, store, records
        store.bind_embedder(embedder.name)
        self._generator = generator
        self._ensured = False
        self._lock = threading.RLock()  # a turn's writes and re-clustering are one step per user

    def remember(self, user: str, session: str, exchange: Exchange) -> list[MemoryUnit]:
        """Stores an exchange as turn, fact and (rewritten) session summary units; returns them."""
        _check(user, session)
        if not self.settings.memory.enabled:
            return []
        with self._lock:
            now, turn_id = time.time(), uuid.uuid4().hex
            earlier = self.records.units(user, session, "turn")
            previous = next(iter(self.records.units(user, session, "summary")), None)
            self.records.add_exchange(user, session, turn_id, exchange, now)
            turn = turn_unit(user, session, turn_id, exchange, now)
            units = [turn, *fact_units(user, session, turn_id, exchange, now, self._keywords(exchange))]
            vectors = self.embedder.embed([u.text for u in units])
            # The summary rolls: the previous one's sentences and the new turn's compete for centrality to
            # the whole session (the mean of its turn vectors), so a turn never re-embeds the session.
            _, turns = self.records.vectors(user, [u.id for u in earlier])
            centre = np.vstack([turns.reshape(-1, vectors.shape[1]), vectors[:1]]).mean(axis=0)
            text = self._summary(previous.text if previous else "", turn.text, centre)
            units.append(summary_unit(user, session, text, [t for u in earlier for t in u.turn_ids] + [turn_id], now))
            vectors = np.vstack([vectors, self.embedder.embed([text])])
            self.records.put_units(units, vectors)  # the record first: the store never holds unrecorded units
            self._upsert(user, session, units, vectors)
            self._associate(user, [u.id for u in units])
        return units

    @property
    def min_similarity(self) -> float:
        """Cosine floor of what is shown to the generator: ``memory.min_similarity``, else the embedder's."""
        configured = self.settings.memory.min_similarity
        return self.embedder.memory_floor if configured is None else configured

    def recall(self, user: str, session: str, query: str, trace: Trace | None = None) -> Recall:
        """The user's memories that bear on ``query``, from any of their sessions; recorded as stage "memory"."""
        _check(user, session)
        m = self.settings.memory
        if not m.enabled:
            return Recall()
        from retrievers.store import Leg

        with (trace or Trace()).stage("memory", router=m.router, session=session) as info:
            self._ensure()
            qvec = self.embedder.embed_queries([query])[0]
            hits: dict[str, list[StoreHit]] = {}
            for g in GRANULARITIES:
                found = self.store.query([Leg("memory", "dense", qvec)], limit=m.candidates, candidates=m.candidates,
                                         unit=g, where={"user": user}, reference=qvec)
                hits[g] = [h for h in found if h.payload.get("user") == user and h.dense_score is not None]
            decision = route({g: [h.dense_score for h in hs] for g, hs in hits.items()}, m.router_temperature, m.router)
            pool = sorted((h for g in decision.chosen for h in hits[g]), key=lambda h: -(h.dense_score or 0.0))
            recalled = list({h.unit_id: _unit(h.payload) for h in pool}.values())[: m.recall_k]
            associated = self._associated(user, recalled, qvec)
            units = recalled + associated
            if m.llm_filter and units:
                units = llm_filter(query, units, self._generator_now(), filtered := info.setdefault("filter", {}))
                self._count("filter", filtered)
            info.update(
                candidates={g: len(hs) for g, hs in hits.items()},
                entropies=decision.entropies,
                chosen=list(decision.chosen),
                units=[u.id for u in units],
                associated=[u.id for u in associated],
            )
            ids, vectors = self.records.vectors(user, [u.id for u in units]) if units else ([], None)
            similarity = dict(zip(ids, (vectors @ qvec).tolist())) if ids else {}
            scores = tuple(round(similarity.get(u.id, 0.0), 4) for u in units)
            info["scores"] = list(scores)
            # The recalled text itself, so the trace (and the web "why this answer" panel) shows what was used.
            info["recalled"] = [
                {"id": u.id, "granularity": u.granularity, "session": u.session_id, "score": score, "text": u.text[:300]}
                for u, score in zip(units, scores)
            ]
        return Recall(tuple(units), decision.chosen, decision.entropies, scores)

    def history(self, user: str, session: str) -> list[Exchange]:
        """The latest ``memory.recent_exchanges`` exchanges of this session, oldest first (for rewriting)."""
        n = self.settings.memory.recent_exchanges
        return self.records.exchanges(user, session)[-n:] if n else []

    def context_block(self, recall: Recall, budget_tokens: int | None = None) -> str:
        """The "Conversation so far" prompt block, most relevant first, of at most ``budget_tokens`` words.

        Args:
            recall: What `recall` returned.
            budget_tokens: Whitespace words the whole block may use; ``memory.budget_tokens`` if None.

        Returns:
            The block, or "" when nothing was recalled or the budget cannot hold a line.
        """
        budget = self.settings.memory.budget_tokens if budget_tokens is None else budget_tokens
        header = "Conversation so far:"
        lines, used = [], len(header.split())
        floor = self.min_similarity
        scores = recall.scores or (1.0,) * len(recall.units)
        for unit, score in zip(recall.units, scores):
            if score < floor:  # recalled, but too far from the question to show the model
                continue
            words, room = unit.text.split(), budget - used - 1  # the "-" bullet is a word too
            if len(words) > room:
                if room < 2:
                    break
                words = words[: room - 1] + ["…"]
            if words:
                lines.append("- " + " ".join(words))
                used += 1 + len(words)
        return "\n".join([header, *lines]) if lines else ""

    def sessions(self, user: str) -> list[SessionInfo]:
        """The user's sessions, oldest first: ``(session, first_at, last_at, turns)``."""
        return self.records.sessions(user)

    def units(self, user: str, session: str | None = None) -> list[MemoryUnit]:
        """The user's memory units (of one session), oldest first."""
        return self.records.units(user, session)

    def forget(self, user: str, session: str | None = None) -> int:
        """Deletes a user's memory (or one session of it), vectors first; returns how many units went."""
        _check(user, session)
        with self._lock:
            sessions = {s.session for s in self.records.sessions(user)}
            sessions |= {u.session_id for u in self.records.units(user)}
            chosen = sorted(sessions) if session is None else [session]
            self.store.delete_docs([f"{user}{SESSION_SEP}{s}" for s in chosen])  # vectors first: never findable, unrecorded
            return len(self.records.forget(user, session))

    def close(self) -> None:
        """Closes the store and the records."""
        try:
            self.store.close()
        finally:
            self.records.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _summary(self, previous: str, turn: str, centre: np.ndarray) -> str:
        extractive = lambda: extractive_summary([previous, turn], self.embedder, centre=centre)  # noqa: E731
        if self.settings.memory.summaries == "llm":
            texts = [f"Earlier: {' '.join(previous.split())}", turn] if previous else [turn]
            summary = llm_summary(texts, self._generator_now(), extractive, info=(info := {}))
            self._count("summary", info)
            return summary
        return extractive()

    def _keywords(self, exchange: Exchange) -> list[str] | None:
        """The model's keywords with ``memory.facts = llm``; None (the rules) otherwise or when it fails."""
        if self.settings.memory.facts != "llm":
            return None
        phrases = llm_keywords(exchange, self._generator_now(), info := {})
        self._count("facts", info)
        return phrases

    def _count(self, step: str, info: dict[str, Any]) -> None:
        self.llm_stats[f"{step}_fallback" if "fallback" in info else step] += 1

    def _upsert(self, user: str, session: str, units: Sequence[MemoryUnit], vectors: np.ndarray) -> None:
        from retrievers.store import READY, StorePoint

        self._ensure()
        doc_id = f"{user}{SESSION_SEP}{session}"
        self.store.upsert([
            StorePoint(u.id, v, u.text, {
                "doc_id": doc_id, "unit_id": u.id, "unit": u.granularity, "user": user, "session": session,
                "state": READY, "text": u.text, "turn_ids": list(u.turn_ids), "created_at": u.created_at,
            })
            for u, v in zip(units, vectors)
        ])

    def _associate(self, user: str, new_ids: Sequence[str]) -> None:
        ids, vectors = self.records.vectors(user, latest=_CLUSTER_WINDOW)
        labels = associate(vectors, self.settings.memory.association_components)
        self.records.set_clusters(dict(zip(ids, labels.tolist())))
        position = {unit_id: n for n, unit_id in enumerate(ids)}
        pairs = links_for(labels, [position[i] for i in new_ids if i in position], limit=_LINKS_PER_UNIT)
        self.records.add_links((ids[a], ids[b]) for a, b in pairs)

    def _associated(self, user: str, recalled: Sequence[MemoryUnit], qvec: np.ndarray) -> list[MemoryUnit]:
        """Up to one associated unit per recalled one (the closest to the query), within 2 × recall_k in all."""
        room = 2 * self.settings.memory.recall_k - len(recalled)
        links = self.records.links_of(u.id for u in recalled)
        partners = {j for js in links.values() for j in js}
        if room <= 0 or not partners:
            return []
        ids, vectors = self.records.vectors(user, partners)  # the user filter: links never cross users
        if not ids:
            return []
        score = dict(zip(ids, (vectors @ qvec).tolist()))
        taken, picked = {u.id for u in recalled}, []
        for unit in recalled:
            options = [j for j in links[unit.id] if j in score and j not in taken]
            if options and len(picked) < room:
                best = max(options, key=score.__getitem__)
                taken.add(best)
                picked.append(best)
        by_id = {u.id: u for u in self.records.units(user, ids=picked)} if picked else {}
        return [by_id[i] for i in picked if i in by_id]

    def _ensure(self) -> None:
        with self._lock:
            if not self._ensured:
                self.store.ensure(self.embedder.dimension)
                self._ensured = True

    def _generator_now(self) -> Generator:
        source = self._generator
        if source is None:
            raise ValueError("this memory step needs a generator: pass generator= to Memory")
        if not isinstance(source, Generator):
            source = self._generator = source()
        return source


def _check(user: str, session: str | None) -> None:
    for name, value in (("user", user), ("session", session)):
        if name == "session" and value is None:  # forget(user): every session
            continue
        if not isinstance(value, str) or not value.strip() or SESSION_SEP in value:
            raise ValueError(f"memory needs a non-empty {name} id without the \\x1f character, got {value!r}")


def _unit(payload: dict[str, Any]) -> MemoryUnit:
    return MemoryUnit(
        str(payload["unit_id"]), str(payload["unit"]), str(payload.get("text", "")), str(payload.get("session", "")),
        tuple(payload.get("turn_ids", ())), float(payload.get("created_at", 0.0)), str(payload.get("user", "")),
    )
