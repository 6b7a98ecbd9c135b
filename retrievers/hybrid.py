"""Hybrid retrieval: the query embedded for the dense leg, its text for the BM25 leg, fused in Qdrant."""

from __future__ import annotations

from assistant.config import ContextSettings, RetrievalSettings
from assistant.models.base import Embedder
from assistant.types import Hit, Trace
from retrievers.store import Store, StoreHit


# Proposition and document retrieval over-fetch, then collapse hits that share a passage or document.
_OVERFETCH = 4


def hit_from_store(found: StoreHit, *, passage_text: bool = False) -> Hit:
    """Converts a store result (payload written by the ingestion pipeline) into a `Hit`.

    Args:
        found: The store result.
        passage_text: Use the unit's whole passage as the text (for proposition hits).
    """
    p = found.payload
    return Hit(
        unit_id=found.unit_id,
        text=p.get("passage_text", p["text"]) if passage_text else p["text"],
        score=found.score,
        source=p.get("source", ""),
        passage_id=p.get("passage_id", found.unit_id),
        doc_id=p["doc_id"],
        title=p.get("title", ""),
        page=p.get("page"),
        heading=p.get("heading"),
        dense_score=found.dense_score,
    )


class HybridRetriever:
    """Finds the units for a question: dense, BM25 or both fused by reciprocal rank fusion.

    The retrieval unit is a passage, a proposition (standing for its passage, or for itself, per
    ``context.unit``) or a document (ranked by its best passage, "MaxP").

    Args:
        store: The vector store holding the units.
        embedder: The embedder the units were indexed with.
        settings: Unit, mode, top-k, candidates per leg, RRF k.
        context: What a hit's text is for proposition retrieval.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        settings: RetrievalSettings,
        context: ContextSettings | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.context = context or ContextSettings()

    def retrieve(self, query: str, trace: Trace | None = None, *, top_k: int | None = None) -> list[Hit]:
        """Returns the best ``top_k`` hits for ``query``, best first.

        Args:
            query: The question or search text.
            trace: Where to record the embedding and search stages (a fresh one if None).
            top_k: Overrides ``settings.top_k`` for this call.
        """
        if not query.strip():
            raise ValueError("the query is empty: ask a question with at least one word")
        trace = trace if trace is not None else Trace()
        k = top_k or self.settings.top_k
        with trace.stage("embed_query", embedder=self.embedder.name):
            vector = self.embedder.embed([query])[0]
        unit = self.settings.unit
        collapse = {"document": "doc_id", "proposition": "passage_id"}.get(unit)
        if unit == "proposition" and self.context.unit == "proposition":
            collapse = None  # each proposition is its own context
        limit = k * _OVERFETCH if collapse else k
        with trace.stage("search", mode=self.settings.mode, unit=unit, top_k=k) as info:
            found = self.store.search(
                vector,
                query,
                mode=self.settings.mode,
                limit=limit,
                candidates=max(self.settings.candidates, limit),
                rrf_k=self.settings.rrf_k,
                unit="proposition" if unit == "proposition" else "passage",
            )
            hits = [hit_from_store(f, passage_text=collapse == "passage_id") for f in found]
            if collapse:
                hits = _first_per(hits, collapse)
            hits = hits[:k]
            info["hits"] = [
                {"unit_id": h.unit_id, "score": round(h.score, 5), "dense_score": _round(h.dense_score)}
                for h in hits
            ]
        return hits


def _first_per(hits: list[Hit], key: str) -> list[Hit]:
    """Keeps the best-ranked hit of each passage or document, in rank order."""
    seen: set[str] = set()
    kept = []
    for hit in hits:
        if getattr(hit, key) not in seen:
            seen.add(getattr(hit, key))
            kept.append(hit)
    return kept


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
