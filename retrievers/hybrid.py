"""Hybrid retrieval: the query embedded for the dense leg, its text for the BM25 leg, fused in Qdrant."""

from __future__ import annotations

from assistant.config import RetrievalSettings
from assistant.models.base import Embedder
from assistant.types import Hit, Trace
from retrievers.store import Store, StoreHit


def hit_from_store(found: StoreHit) -> Hit:
    """Converts a store result (payload written by the ingestion pipeline) into a `Hit`."""
    p = found.payload
    return Hit(
        unit_id=found.unit_id,
        text=p["text"],
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
    """Finds the passages for a question: dense, BM25 or both fused by reciprocal rank fusion.

    Args:
        store: The vector store holding the passages.
        embedder: The embedder the passages were indexed with.
        settings: Mode, top-k, candidates per leg, RRF k.
    """

    def __init__(self, store: Store, embedder: Embedder, settings: RetrievalSettings) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings

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
        with trace.stage("search", mode=self.settings.mode, top_k=k) as info:
            found = self.store.search(
                vector,
                query,
                mode=self.settings.mode,
                limit=k,
                candidates=max(self.settings.candidates, k),
                rrf_k=self.settings.rrf_k,
            )
            hits = [hit_from_store(f) for f in found]
            info["hits"] = [
                {"unit_id": h.unit_id, "score": round(h.score, 5), "dense_score": _round(h.dense_score)}
                for h in hits
            ]
        return hits


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
