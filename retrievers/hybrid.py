"""Hybrid retrieval: from a question (and the conversation) to the fused, ranked units.

The query side runs in this order, each step a setting that can be off (DESIGN.md, "Data flow"):
rewrite a follow-up into standalone queries → HyDE for the dense leg → LLM and corpus-steered expansion for
the BM25 leg → sources and dates the question names (`retrievers.query_analysis`) add legs restricted to
them → one Qdrant query that fuses every leg (each query variant's dense and BM25 search) → for a
multi-part question, one search per part, interleaved with the whole question's ranking → at most
``retrieval.max_per_document`` passages of one document before the next documents get their turn. Every step records its inputs, outputs and time in the trace; an LLM step that fails falls back to its input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from assistant.config import ContextSettings, QuerySettings, RetrievalSettings
from assistant.models.base import Embedder, Generator
from assistant.types import Exchange, Hit, StageRecord, Trace
from retrievers.csqe import CorpusSteeredExpander
from retrievers.decompose import decompose, interleave
from retrievers.expansion import LLMExpander
from retrievers.hyde import HyDE
from retrievers.links import linked_titles, title_index
from retrievers.query_analysis import Mentions, analyse
from retrievers.rerank import LLMReranker
from retrievers.rewrite import ConversationalRewriter
from retrievers.sparse import SparseVec, weighted_sum
from retrievers.store import Leg, Store, StoreHit

# Proposition and document retrieval over-fetch, then collapse hits that share a passage or document.
_OVERFETCH = 4
_PLANS_KEPT = 64  # identical (question, conversation) pairs reuse their LLM steps within a process
_LLM_STAGES = ("rewrite", "hyde", "expand", "csqe")


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


@dataclass(frozen=True)
class QueryPlan:
    """What the query steps made of a question: the legs to fuse and the vector relevance is judged by.

    Attributes:
        variants: The query texts retrieved (the question, or its standalone rewrites).
        legs: Every dense and BM25 leg, in fusion order.
        reference: The first variant's own embedding (never the HyDE mix): hits' ``dense_score`` is the
            cosine to it, so the relevance gate judges the question, not a hypothetical answer.
        steps: The trace records of the steps that made the plan.
        parts: A multi-part question's sub-queries, each with its own dense and BM25 legs.
    """

    variants: tuple[str, ...]
    legs: tuple[Leg, ...]
    reference: np.ndarray
    steps: tuple[StageRecord, ...]
    parts: tuple[tuple[str, tuple[Leg, ...]], ...] = ()


class HybridRetriever:
    """Finds the units for a question: dense, BM25 or both fused by reciprocal rank fusion.

    The retrieval unit is a passage, a proposition (standing for its passage, or for itself, per
    ``context.unit``) or a document (ranked by its best passage, "MaxP").

    Args:
        store: The vector store holding the units.
        embedder: The embedder the units were indexed with.
        settings: Unit, mode, top-k, candidates per leg, RRF k and weights.
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
        self.settings = settings
        self.context = context or ContextSettings()
        self.query = query or QuerySettings(rewrite=False)
        self._generator = generator
        self._plans: OrderedDict[tuple[str, tuple[Exchange, ...]], QueryPlan] = OrderedDict()
        self._sources: tuple[int, dict[str, list[str]]] | None = None
        self._titles: tuple[int, dict[str, list[str]]] | None = None

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
        if not query.strip():
            raise ValueError("the query is empty: ask a question with at least one word")
        trace = trace if trace is not None else Trace()
        k = top_k or self.settings.top_k
        plan = self.plan(query, trace, history=history)
        unit = self.settings.unit
        collapse = {"document": "doc_id", "proposition": "passage_id"}.get(unit)
        if unit == "proposition" and self.context.unit == "proposition":
            collapse = None  # each proposition is its own context
        per_document = self.settings.max_per_document
        limit = k * _OVERFETCH if collapse or per_document else k
        limit = max(limit, self.settings.rerank)
        # Spreading reorders the fused list; it must not deepen each leg (score fusion normalises over the
        # candidates, so more of them would change the ranking being spread).
        candidates = max(self.settings.candidates, k if per_document and not collapse else limit)
        store_unit = "proposition" if unit == "proposition" else "passage"
        with trace.stage("search", mode=self.settings.mode, fusion=self.settings.fusion, unit=unit, top_k=k, legs=len(plan.legs)) as info:
            if unit == "passage+proposition":
                hits = self._passages_and_best_propositions(plan, candidates)
            else:
                found = self._search(plan, store_unit, limit, candidates, info)
                hits = [hit_from_store(f, passage_text=collapse == "passage_id") for f in found]
                if collapse:
                    hits = _first_per(hits, collapse)
            if plan.parts:
                rankings = [hits, *self._search_parts(plan, store_unit, limit, candidates, collapse)]
                hits = interleave(rankings, lambda h: getattr(h, collapse or "unit_id"), limit)
                info["parts"] = len(plan.parts)
            if self.settings.links and hits and unit != "passage+proposition":
                linked = self._follow_links(plan, hits, store_unit, limit, candidates, collapse, info)
                hits = interleave([hits, linked], lambda h: getattr(h, collapse or "unit_id"), limit)
            if per_document:
                hits = spread_documents(hits, per_document)
                info["max_per_document"] = per_document
            hits = hits[: max(k, self.settings.rerank)]
            info["hits"] = [
                {"unit_id": h.unit_id, "score": round(h.score, 5), "dense_score": _round(h.dense_score)}
                for h in hits
            ]
        if self.settings.rerank > 1 and len(hits) > 1:
            with trace.stage("rerank", top_n=self.settings.rerank, order=self.settings.rerank_order) as info:
                reranker = LLMReranker(self._llm(), self.settings.rerank, self.settings.rerank_order)
                hits = reranker.rerank(plan.variants[0], hits, info)
        hits = hits[:k]
        if self.settings.trace_legs and len(plan.legs) > 1:
            with trace.stage("legs", candidates=candidates) as info:
                info["legs"] = {
                    leg.name: [f.unit_id for f in self.store.query([leg], limit=candidates, candidates=candidates, unit=store_unit)]
                    for leg in plan.legs
                }
        return hits

    def _search(
        self, plan: QueryPlan, unit: str, limit: int, candidates: int, info: dict[str, Any] | None = None
    ) -> list[StoreHit]:
        return self.store.query(
            plan.legs, limit=limit, candidates=candidates, rrf_k=self.settings.rrf_k, unit=unit, reference=plan.reference,
            fusion=self.settings.fusion, info=info,
        )

    def _follow_links(
        self, plan: QueryPlan, hits: list[Hit], unit: str, limit: int, candidates: int, collapse: str | None,
        info: dict[str, Any],
    ) -> list[Hit]:
        """The second hop: the question searched again, only in the documents whose titles the first hop's top
        ``retrieval.links`` documents name (`retrievers.links`); best passage of each linked document first."""
        sources = _first_per(hits, "doc_id")[: self.settings.links]
        seen = {h.title for h in _first_per(hits, "doc_id")[: max(self.settings.links * 2, 4)]}
        titles = linked_titles([h.text for h in sources], seen, self._known_titles())
        info["links"] = {"from": [h.doc_id for h in sources], "titles": titles}
        if not titles:
            return []
        legs = [replace(leg, where=leg.where + (("title", tuple(titles)),)) for leg in plan.legs if not leg.where]
        found = self.store.query(
            legs, limit=limit, candidates=candidates, rrf_k=self.settings.rrf_k, unit=unit, reference=plan.reference,
            fusion=self.settings.fusion,
        )
        linked = [hit_from_store(f, passage_text=collapse == "passage_id") for f in found]
        return _first_per(linked, collapse or "doc_id")

    def _known_titles(self) -> dict[str, list[str]]:
        """The index's document titles by match key, cached until this process next changes the store."""
        if self._titles is None or self._titles[0] != self.store.generation:
            self._titles = (self.store.generation, title_index(self.store.values("title", limit=1_000_000)))
        return self._titles[1]

    def _search_parts(
        self, plan: QueryPlan, unit: str, limit: int, candidates: int, collapse: str | None
    ) -> list[list[Hit]]:
        """Each part's own ranking (its dense and BM25 legs fused); hits judged against the whole question."""
        rankings = []
        for _, legs in plan.parts:
            found = self.store.query(
                legs, limit=limit, candidates=candidates, rrf_k=self.settings.rrf_k, unit=unit,
                reference=plan.reference, fusion=self.settings.fusion,
            )
            hits = [hit_from_store(f, passage_text=collapse == "passage_id") for f in found]
            rankings.append(_first_per(hits, collapse) if collapse else hits)
        return rankings

    def _passages_and_best_propositions(self, plan: QueryPlan, candidates: int) -> list[Hit]:
        """Passages ranked by RRF of two rankings: the passages' own, and the passages ordered by their best
        proposition (Dense X's precise units as evidence for the passage that holds them)."""
        passages = [hit_from_store(f) for f in self._search(plan, "passage", candidates, candidates)]
        found = self._search(plan, "proposition", candidates * _OVERFETCH, candidates * _OVERFETCH)
        by_proposition = _first_per([hit_from_store(f, passage_text=True) for f in found], "passage_id")
        return fuse_passage_rankings([passages, by_proposition], self.settings.rrf_k)

    def plan(self, question: str, trace: Trace, *, history: Sequence[Exchange] = ()) -> QueryPlan:
        """Runs the query steps for a question (or reuses an identical question's plan) and records them."""
        key = (question, tuple(history))
        if (known := self._plans.get(key)) is not None:
            self._plans.move_to_end(key)
            trace.stages.extend(replace(s, seconds=0.0, details={**s.details, "reused": True}) for s in known.steps)
            return known
        before = len(trace.stages)
        plan = self._make_plan(question, history, trace)
        plan = replace(plan, steps=tuple(trace.stages[before:]))
        if any(s.name in _LLM_STAGES for s in plan.steps):
            self._plans[key] = plan
            if len(self._plans) > _PLANS_KEPT:
                self._plans.popitem(last=False)
        return plan

    def _make_plan(self, question: str, history: Sequence[Exchange], trace: Trace) -> QueryPlan:
        q, mode = self.query, self.settings.mode
        variants = [question]
        if history and q.rewrite:
            with trace.stage("rewrite", exchanges=len(history)) as info:
                variants = ConversationalRewriter(
                    self._llm(), rewrites=q.rewrites, max_new_tokens=q.max_new_tokens
                ).rewrite(question, history, info)
        parts: list[str] = []
        if q.decompose == "rules":
            with trace.stage("decompose", method="rules") as info:
                parts = decompose(variants[0])
                info["parts"] = parts
        with trace.stage("embed_query", embedder=self.embedder.name, variants=variants, parts=len(parts)):
            embedded = self.embedder.embed_queries(variants + parts)
        vectors, part_vectors = embedded[: len(variants)], embedded[len(variants) :]
        dense = list(vectors)
        hyde_used = False
        if q.hyde and mode != "sparse":
            with trace.stage("hyde", passages=q.hyde_passages) as info:
                hyde = HyDE(self._llm(), self.embedder, passages=q.hyde_passages, max_new_tokens=q.max_new_tokens)
                dense[0] = hyde.vector(variants[0], vectors[0], info)
                hyde_used = "fallback" not in info
        sparse = [self.store.encode_query(v) for v in variants]
        expanded = False
        if (q.expansion != "off" or q.csqe) and mode != "dense":
            sparse[0], expanded = self._expand(variants[0], vectors[0], sparse[0], trace)
        legs = []
        for i in range(len(variants)):
            if mode != "sparse":
                name = f"q{i}.hyde" if i == 0 and hyde_used else f"q{i}.dense"
                legs.append(Leg(name, "dense", dense[i], self.settings.dense_weight))
            if mode != "dense":
                name = f"q{i}.bm25+expansion" if i == 0 and expanded else f"q{i}.bm25"
                legs.append(Leg(name, "sparse", sparse[i], self.settings.sparse_weight))
        if q.metadata != "off":
            legs = self._metadata_legs(question, legs, vectors[0], sparse[0], trace)
        part_legs = tuple((text, tuple(self._plain_legs(f"part{i}", vector, text))) for i, (text, vector) in enumerate(zip(parts, part_vectors)))
        return QueryPlan(tuple(variants), tuple(legs), vectors[0], (), part_legs)

    def _metadata_legs(
        self, question: str, legs: list[Leg], vector: np.ndarray, sparse: SparseVec, trace: Trace
    ) -> list[Leg]:
        """The question's sources and dates as extra legs restricted to them (``boost``: a wrong guess costs a
        few places), or every leg restricted to the first of them (``filter``: a wrong guess finds nothing)."""
        with trace.stage("metadata", mode=self.query.metadata) as info:
            mentions = analyse(question, self._known_sources())
            info["sources"] = [{"field": m.field, "value": m.value, "said": m.said} for m in mentions.sources]
            info["dates"] = [{"from": m.range.start, "to": m.range.end, "said": m.said} for m in mentions.dates]
        if not mentions:
            return legs
        restrictions = _restrictions(mentions)
        if self.query.metadata == "filter":
            return [replace(leg, where=restrictions[0]) for leg in legs]
        extra = []
        for n, where in enumerate(restrictions):
            for leg in self._plain_legs(f"meta{n}", vector, question, sparse):
                extra.append(replace(leg, where=where, weight=leg.weight * self.query.metadata_weight))
        return legs + extra

    def _known_sources(self) -> dict[str, list[str]]:
        """The index's site and author values (facets), cached until this process next changes the store."""
        if self._sources is None or self._sources[0] != self.store.generation:
            self._sources = (self.store.generation, {f: self.store.values(f) for f in ("site", "author")})
        return self._sources[1]

    def _plain_legs(self, name: str, vector: np.ndarray, text: str, sparse: SparseVec | None = None) -> list[Leg]:
        """A query's dense and BM25 legs, as the retrieval mode asks, with no LLM step."""
        legs = []
        if self.settings.mode != "sparse":
            legs.append(Leg(f"{name}.dense", "dense", vector, self.settings.dense_weight))
        if self.settings.mode != "dense":
            encoded = sparse if sparse is not None else self.store.encode_query(text)
            legs.append(Leg(f"{name}.bm25", "sparse", encoded, self.settings.sparse_weight))
        return legs

    def _expand(self, query: str, vector: np.ndarray, encoded: SparseVec, trace: Trace) -> tuple[SparseVec, bool]:
        """The BM25 query with LLM (and corpus-steered) expansion; the plain one if every step fell back."""
        q = self.query
        # CSQE adds corpus sentences *alongside* the LLM's own expansion; few-shot works for base models too.
        style = q.expansion if q.expansion != "off" else "few-shot"
        with trace.stage("expand", query_repeats=q.query_repeats) as info:
            expansion = LLMExpander(self._llm(), style=style, max_new_tokens=q.max_new_tokens).expand(query, info)
        extra = [expansion] if expansion else []
        if q.csqe:
            with trace.stage("csqe", first_pass=q.csqe_hits) as info:
                first_legs = [Leg("dense", "dense", vector), Leg("bm25", "sparse", encoded)]
                if self.settings.mode == "sparse":
                    first_legs = first_legs[1:]
                first = self.store.query(
                    first_legs, limit=q.csqe_hits, candidates=self.settings.candidates, rrf_k=self.settings.rrf_k,
                    unit="passage", fusion=self.settings.fusion,
                )
                info["first_pass_ids"] = [f.unit_id for f in first]
                sentences = CorpusSteeredExpander(self._llm()).select(query, [f.payload["text"] for f in first], info)
            extra += sentences
        if not extra:
            return encoded, False
        parts = [(encoded, float(q.query_repeats))] + [(self.store.encode_query(t), 1.0) for t in extra]
        return weighted_sum(parts), True

    def _llm(self) -> Generator:
        if self._generator is None:
            raise ValueError("query rewriting and expansion need a generator; none was given to the retriever")
        return self._generator()


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


def _restrictions(mentions: Mentions) -> list[tuple[tuple[str, Any], ...]]:
    """One restriction per source named (with the first date, when there is one), or per date alone."""
    date = (("date", mentions.dates[0].range),) if mentions.dates else ()
    if mentions.sources:
        return [((m.field, m.value), *date) for m in mentions.sources]
    return [(("date", m.range),) for m in mentions.dates]


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
