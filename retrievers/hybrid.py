"""Hybrid retrieval: from a question (and the conversation) to the fused, ranked units.

`retrieval_stages` builds the stages the settings turn on: the query plan (`retrievers.query_stages`:
rewrite, decompose, embed, HyDE, expansion, CSQE, the legs, sources and dates) → `Search` (one Qdrant query
that fuses every leg; a multi-part question's parts; the title links' second hop; diversity across
documents) → `Rerank` by the query generator → `LegRankings` for the trace. `HybridRetriever` runs them as a
pipeline for `tessera search` and the evaluation; the assistant runs them as the first stages of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from assistant.config import ContextSettings, QuerySettings, RetrievalSettings, Settings
from assistant.models.base import Embedder, Generator
from assistant.types import Exchange, Hit, Trace
from retrievers.decompose import interleave
from retrievers.links import linked_titles, title_index
from retrievers.pipeline import Pipeline, Stage, Turn
from retrievers.query_stages import Components, QueryPlan, QueryPlanner, query_planner
from retrievers.rerank import LLMReranker
from retrievers.store_base import Leg, Store, StoreHit

__all__ = ["HybridRetriever", "QueryPlan", "Search", "Rerank", "retrieval_stages", "hit_from_store"]

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


class Search(Stage):
    """One Qdrant query that fuses every leg; for a multi-part question one per part, interleaved with the
    whole question's ranking; the title links' second hop; at most ``retrieval.max_per_document`` passages
    of one document before the next documents get their turn."""

    name, reads, writes, where = "search", ("legs", "part_legs", "vectors", "top_k"), ("hits",), "retrievers/hybrid.py + store.py"

    def __init__(self, retrieval: RetrievalSettings, context: ContextSettings, components: Components) -> None:
        self.settings, self.context, self.components = retrieval, context, components
        self._titles: tuple[int, dict[str, list[str]]] | None = None
        self._checked: int | None = None  # the store generation whose propositions were checked

    def run(self, turn: Turn) -> None:
        r = self.settings
        k = turn.top_k or r.top_k
        unit = r.unit
        if unit in ("proposition", "passage+proposition"):
            self._check_propositions()
        collapse = {"document": "doc_id", "proposition": "passage_id"}.get(unit)
        if unit == "proposition" and self.context.unit == "proposition":
            collapse = None  # each proposition is its own context
        per_document = r.max_per_document
        limit = max(k * _OVERFETCH if collapse or per_document else k, r.rerank)
        # Spreading reorders the fused list; it must not deepen each leg (score fusion normalises over the
        # candidates, so more of them would change the ranking being spread).
        candidates = max(r.candidates, k if per_document and not collapse else limit)
        store_unit = "proposition" if unit == "proposition" else "passage"
        reference = turn.vectors[0]
        same = lambda h: getattr(h, collapse or "unit_id")  # noqa: E731
        with turn.trace.stage("search", mode=r.mode, fusion=r.fusion, unit=unit, top_k=k, legs=len(turn.legs)) as info:
            if unit == "passage+proposition":
                hits = self._passages_and_best_propositions(turn.legs, reference, candidates)
            else:
                hits = self._ranking(turn.legs, reference, store_unit, limit, candidates, collapse, info)
            if turn.part_legs:  # each part's own ranking, judged against the whole question
                parts = [self._ranking(legs, reference, store_unit, limit, candidates, collapse) for _, legs in turn.part_legs]
                hits = interleave([hits, *parts], same, limit)
                info["parts"] = len(turn.part_legs)
            if r.links and hits and unit != "passage+proposition":
                linked = self._follow_links(turn.legs, reference, hits, store_unit, limit, candidates, collapse, info)
                hits = interleave([hits, linked], same, limit)
            if per_document:
                hits = spread_documents(hits, per_document)
                info["max_per_document"] = per_document
            # `Rerank` judges the deeper list and keeps k.
            turn.hits = hits[: max(k, r.rerank)] if r.rerank > 1 else hits[:k]
            info["hits"] = [
                {"unit_id": h.unit_id, "score": round(h.score, 5), "dense_score": _round(h.dense_score)}
                for h in turn.hits
            ]

    def _check_propositions(self) -> None:
        """Searching by proposition an index that holds none would find nothing and abstain on every question."""
        store = self.components.store
        if self._checked == store.generation:
            return
        units = store.values("unit")
        if units and "proposition" not in units:
            raise ValueError(
                f"retrieval.unit={self.settings.unit} searches propositions, but this index holds none "
                "(ingestion.propositions is off by default). Ingest your documents again with "
                "--set ingestion.propositions=rules (changed settings re-index every file), or search passages "
                "(retrieval.unit=passage)"
            )
        self._checked = store.generation

    def _query(
        self, legs: Sequence[Leg], reference: np.ndarray, unit: str, limit: int, candidates: int,
        info: dict[str, Any] | None = None,
    ) -> list[StoreHit]:
        r = self.settings
        return self.components.store.query(
            legs, limit=limit, candidates=candidates, rrf_k=r.rrf_k, unit=unit, reference=reference, fusion=r.fusion,
            info=info,
        )

    def _ranking(
        self, legs: Sequence[Leg], reference: np.ndarray, unit: str, limit: int, candidates: int, collapse: str | None,
        info: dict[str, Any] | None = None,
    ) -> list[Hit]:
        """The legs fused into hits, the best of each passage or document only when ``collapse`` names one."""
        found = self._query(legs, reference, unit, limit, candidates, info)
        hits = [hit_from_store(f, passage_text=collapse == "passage_id") for f in found]
        return _first_per(hits, collapse) if collapse else hits

    def _follow_links(
        self, legs: Sequence[Leg], reference: np.ndarray, hits: list[Hit], unit: str, limit: int, candidates: int,
        collapse: str | None, info: dict[str, Any],
    ) -> list[Hit]:
        """The second hop: the question searched again, only in the documents whose titles the first hop's top
        ``retrieval.links`` documents name (`retrievers.links`); best passage of each linked document first."""
        sources = _first_per(hits, "doc_id")[: self.settings.links]
        seen = {h.title for h in _first_per(hits, "doc_id")[: max(self.settings.links * 2, 4)]}
        titles = linked_titles([h.text for h in sources], seen, self._known_titles())
        info["links"] = {"from": [h.doc_id for h in sources], "titles": titles}
        if not titles:
            return []
        restricted = [replace(leg, where=leg.where + (("title", tuple(titles)),)) for leg in legs if not leg.where]
        linked = self._ranking(restricted, reference, unit, limit, candidates, collapse)
        return _first_per(linked, collapse or "doc_id")

    def _known_titles(self) -> dict[str, list[str]]:
        """The index's document titles by match key, cached until this process next changes the store."""
        store = self.components.store
        if self._titles is None or self._titles[0] != store.generation:
            self._titles = (store.generation, title_index(store.values("title", limit=1_000_000)))
        return self._titles[1]

    def _passages_and_best_propositions(self, legs: Sequence[Leg], reference: np.ndarray, candidates: int) -> list[Hit]:
        """Passages ranked by RRF of two rankings: the passages' own, and the passages ordered by their best
        proposition (Dense X's precise units as evidence for the passage that holds them)."""
        passages = [hit_from_store(f) for f in self._query(legs, reference, "passage", candidates, candidates)]
        found = self._query(legs, reference, "proposition", candidates * _OVERFETCH, candidates * _OVERFETCH)
        by_proposition = _first_per([hit_from_store(f, passage_text=True) for f in found], "passage_id")
        return fuse_passage_rankings([passages, by_proposition], self.settings.rrf_k)

    def describe(self) -> str:
        r = self.settings
        extra = f", title links from the top {r.links}" if r.links else ""
        extra += f", ≤{r.max_per_document} per document first" if r.max_per_document else ""
        return f"{r.mode}, {r.fusion}, unit {r.unit}, {r.candidates} per leg{extra}"


class Rerank(Stage):
    """The top N judged by the query generator ("Does the passage help answer the question?")."""

    name, reads, writes, where = "rerank", ("variants", "hits", "top_k"), ("hits",), "retrievers/rerank.py"

    def __init__(self, retrieval: RetrievalSettings, components: Components) -> None:
        self.settings, self.components = retrieval, components

    def run(self, turn: Turn) -> None:
        r = self.settings
        if len(turn.hits) > 1:
            with turn.trace.stage("rerank", top_n=r.rerank, order=r.rerank_order) as info:
                reranker = LLMReranker(self.components.query_generator, r.rerank, r.rerank_order)
                turn.hits = reranker.rerank(turn.variants[0], turn.hits, info)
        turn.hits = turn.hits[: turn.top_k or r.top_k]

    def describe(self) -> str:
        return f"top {self.settings.rerank}, {self.settings.rerank_order}"


class LegRankings(Stage):
    """Each leg's own ranking, searched again for the trace (``retrieval.trace_legs``: diagnosis only)."""

    name, reads, writes, where = "legs", ("legs",), (), "retrievers/hybrid.py"

    def __init__(self, retrieval: RetrievalSettings, components: Components) -> None:
        self.settings, self.components = retrieval, components

    def run(self, turn: Turn) -> None:
        if len(turn.legs) < 2:
            return
        r, store = self.settings, self.components.store
        unit = "proposition" if r.unit == "proposition" else "passage"
        with turn.trace.stage("legs", candidates=r.candidates) as info:
            info["legs"] = {
                leg.name: [f.unit_id for f in store.query([leg], limit=r.candidates, candidates=r.candidates, unit=unit)]
                for leg in turn.legs
            }

    def describe(self) -> str:
        return "each leg's ranking into the trace"


def retrieval_stages(settings: Settings, components: Components) -> list[Stage]:
    """The retrieval stages the settings turn on, in order: the query plan, search, reranking, leg rankings."""
    r = settings.retrieval
    stages: list[Stage] = [
        query_planner(r, settings.query, settings.models.embedder, components, settings.query.generator or settings.models.generator),
        Search(r, settings.context, components),
    ]
    if r.rerank > 1:
        stages.append(Rerank(r, components))
    if r.trace_legs:
        stages.append(LegRankings(r, components))
    return stages


class HybridRetriever:
    """Finds the units for a question: dense, BM25 or both fused (`retrieval_stages` run as a pipeline).

    The retrieval unit is a passage, a proposition (standing for its passage, or for itself, per
    ``context.unit``) or a document (ranked by its best passage, "MaxP").

    Args:
        store: The vector store holding the units.
        embedder: The embedder the units were indexed with.
        settings: Unit, mode, top-k, candidates per leg, fusion and weights.
        context: What a hit's text is for proposition retrieval.
        query: Which query steps run (rewriting, HyDE, expansion, CSQE).
        generator: Returns the generator the LLM steps use; called only when one runs, so plain
            retrieval never loads a model.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        settings: RetrievalSettings,
        context: ContextSettings | None = None,
        *,
        query: QuerySettings | None = None,
        generator: Callable[[], Generator] | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        store.bind_embedder(embedder.name)
        self._generator = generator
        self.settings = settings
        self.context = context or ContextSettings()
        self.query = query or QuerySettings(rewrite=False)
        whole = Settings(retrieval=settings, context=self.context, query=self.query)
        self.pipeline = Pipeline(retrieval_stages(whole, self))

    @property
    def query_generator(self) -> Generator:
        """The generator of the query steps (loaded only when one runs)."""
        if self._generator is None:
            raise ValueError("query rewriting and expansion need a generator; none was given to the retriever")
        return self._generator()

    def retrieve(
        self,
        query: str,
        trace: Trace | None = None,
        *,
        top_k: int | None = None,
        history: Sequence[Exchange] = (),
    ) -> list[Hit]:
        """Returns the best ``top_k`` hits for ``query``, best first.

        Args:
            query: The question or search text.
            trace: Where to record each step (a fresh one if None).
            top_k: Overrides ``settings.top_k`` for this call.
            history: Earlier exchanges of the conversation, oldest first (for rewriting a follow-up).
        """
        check_query(query)
        turn = Turn(query, trace if trace is not None else Trace(), history=tuple(history), top_k=top_k)
        for _ in self.pipeline.run(turn):
            pass
        return turn.hits

    def plan(self, question: str, trace: Trace, *, history: Sequence[Exchange] = ()) -> QueryPlan:
        """Runs the query steps for a question (or reuses an identical question's plan) and records them."""
        planner = self.pipeline.stages[0]
        assert isinstance(planner, QueryPlanner)
        turn = Turn(question, trace, history=tuple(history))
        planner.run(turn)
        return planner.plan(turn)


def check_query(query: str) -> None:
    """Raises ValueError for an empty question (nothing to embed or match)."""
    if not query.strip():
        raise ValueError("the query is empty: ask a question with at least one word")


def fuse_passage_rankings(rankings: Sequence[Sequence[Hit]], rrf_k: int) -> list[Hit]:
    """Reciprocal rank fusion of rankings of passages (each passage at most once per ranking).

    A passage is reported as itself (``unit_id`` = its passage id, text = the passage) with the fused score
    and the highest cosine any of its units reached, so the relevance gate sees its best evidence.
    """
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    best_cosine: dict[str, float | None] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            key = hit.passage_id
            scores[key] = scores.get(key, 0.0) + 1.0 / (rrf_k + rank)
            first.setdefault(key, hit)
            cosines = [c for c in (best_cosine.get(key), hit.dense_score) if c is not None]
            best_cosine[key] = max(cosines) if cosines else None
    order = sorted(scores, key=lambda key: (-scores[key], key))
    return [
        replace(first[key], unit_id=key, score=scores[key], dense_score=best_cosine[key]) for key in order
    ]


def spread_documents(hits: Sequence[Hit], per_document: int) -> list[Hit]:
    """The hits with at most ``per_document`` of each document ahead of the rest (kept, in rank order, after):
    a question that needs several documents gets them, not one document's every passage."""
    counts: dict[str, int] = {}
    first, later = [], []
    for hit in hits:
        counts[hit.doc_id] = counts.get(hit.doc_id, 0) + 1
        (first if counts[hit.doc_id] <= per_document else later).append(hit)
    return first + later


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
