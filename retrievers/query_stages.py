"""The query steps as stages: from a question (and the conversation) to the legs a search fuses.

In order, each built only when its setting is on (DESIGN.md, "Data flow"): rewrite a follow-up into
standalone queries → split a multi-part question → embed the query (dense and BM25) → HyDE for the dense
leg → LLM and corpus-steered expansion for the BM25 leg → the legs → sources and dates the question names
add legs restricted to them. `QueryPlanner` runs them as one stage and reuses the result for an identical
question and conversation. An LLM step that fails falls back to its input; the trace says why.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from assistant.config import QuerySettings, RetrievalSettings
from assistant.models.base import Embedder, Generator
from assistant.types import Exchange, StageRecord
from retrievers.csqe import CorpusSteeredExpander
from retrievers.decompose import decompose
from retrievers.expansion import LLMExpander
from retrievers.hyde import HyDE
from retrievers.pipeline import GIVEN, Pipeline, Stage, Turn
from retrievers.points import Leg
from retrievers.query_analysis import Mentions, analyse
from retrievers.rewrite import ConversationalRewriter
from retrievers.sparse import SparseVec, weighted_sum
from retrievers.store_base import Store

_PLANS_KEPT = 64  # identical (question, conversation) pairs reuse their LLM steps within a process
_LLM_STAGES = ("rewrite", "hyde", "expand", "csqe")
# Set before the query steps run, each to what it is when its step is off: the question as the one variant,
# no parts, no expansions, no HyDE vector.
_DEFAULTED = ("variants", "parts", "expansions", "hyde_used")


class Components(Protocol):
    """What retrieval stages use, looked up only when they run: building a pipeline loads no model and opens
    no store (`tessera config --pipeline` builds one to print it)."""

    @property
    def store(self) -> Store: ...

    @property
    def embedder(self) -> Embedder: ...

    @property
    def query_generator(self) -> Generator: ...


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


class Rewrite(Stage):
    """A follow-up question rewritten into standalone queries (only when there is a conversation)."""

    name, reads, writes, where = "rewrite", ("question", "history", "variants"), ("variants",), "retrievers/rewrite.py"

    def __init__(self, query: QuerySettings, components: Components, llm: str = "the generator") -> None:
        self.query, self.components, self.llm = query, components, llm

    def run(self, turn: Turn) -> None:
        if not turn.history:
            return
        with turn.trace.stage("rewrite", exchanges=len(turn.history)) as info:
            rewriter = ConversationalRewriter(
                self.components.query_generator, rewrites=self.query.rewrites, max_new_tokens=self.query.max_new_tokens
            )
            turn.variants = rewriter.rewrite(turn.question, turn.history, info)

    def describe(self) -> str:
        return f"{self.query.rewrites} rewrites by {self.llm}, only with a conversation"


class Decompose(Stage):
    """A multi-part question split into its parts by rules (each part is searched too)."""

    name, reads, writes, where = "decompose", ("variants",), ("parts",), "retrievers/decompose.py"

    def run(self, turn: Turn) -> None:
        with turn.trace.stage("decompose", method="rules") as info:
            turn.parts = decompose(turn.variants[0])
            info["parts"] = turn.parts

    def describe(self) -> str:
        return "rules"


class EmbedQuery(Stage):
    """Each query variant and part embedded for the dense legs and encoded for the BM25 legs."""

    name, reads, where = "embed_query", ("variants", "parts"), "assistant/models + retrievers/sparse.py"
    writes = ("vectors", "part_vectors", "dense", "sparse")

    def __init__(self, embedder_name: str, components: Components) -> None:
        self.embedder_name, self.components = embedder_name, components

    def run(self, turn: Turn) -> None:
        embedder, store = self.components.embedder, self.components.store
        store.bind_embedder(embedder.name)  # the index refuses another model's vectors (checked on the search)
        with turn.trace.stage("embed_query", embedder=embedder.name, variants=turn.variants, parts=len(turn.parts)):
            embedded = embedder.embed_queries(turn.variants + turn.parts)
        turn.vectors, turn.part_vectors = list(embedded[: len(turn.variants)]), list(embedded[len(turn.variants) :])
        turn.dense = list(turn.vectors)
        turn.sparse = [store.encode_query(v) for v in turn.variants]

    def describe(self) -> str:
        return self.embedder_name


class Hyde(Stage):
    """HyDE: the first dense leg searches with the mean of the question's and hypothetical passages' vectors."""

    name, reads, writes, where = "hyde", ("variants", "vectors"), ("dense", "hyde_used"), "retrievers/hyde.py"

    def __init__(self, query: QuerySettings, components: Components, llm: str = "the generator") -> None:
        self.query, self.components, self.llm = query, components, llm

    def run(self, turn: Turn) -> None:
        q = self.query
        with turn.trace.stage("hyde", passages=q.hyde_passages) as info:
            hyde = HyDE(self.components.query_generator, self.components.embedder, passages=q.hyde_passages, max_new_tokens=q.max_new_tokens)
            turn.dense[0] = hyde.vector(turn.variants[0], turn.vectors[0], info)
            turn.hyde_used = "fallback" not in info

    def describe(self) -> str:
        return f"{self.query.hyde_passages} passage(s) by {self.llm}"


class Expand(Stage):
    """LLM query expansion (query2doc and its kin): text the model writes is added to the first BM25 query."""

    name, reads, writes, where = "expand", ("variants", "expansions"), ("expansions",), "retrievers/expansion.py"

    def __init__(self, query: QuerySettings, components: Components, llm: str = "the generator") -> None:
        self.query, self.components, self.llm = query, components, llm
        # CSQE adds corpus sentences *alongside* the LLM's own expansion; few-shot works for base models too.
        self.style = query.expansion if query.expansion != "off" else "few-shot"

    def run(self, turn: Turn) -> None:
        with turn.trace.stage("expand", query_repeats=self.query.query_repeats) as info:
            expander = LLMExpander(self.components.query_generator, style=self.style, max_new_tokens=self.query.max_new_tokens)
            expansion = expander.expand(turn.variants[0], info)
        if expansion:
            turn.expansions.append(expansion)

    def describe(self) -> str:
        return f"{self.style} by {self.llm}, the question weighted {self.query.query_repeats}×"


class Csqe(Stage):
    """Corpus-steered expansion: sentences of a first search's passages the model picks as relevant."""

    name, reads, writes, where = "csqe", ("variants", "vectors", "sparse", "expansions"), ("expansions",), "retrievers/csqe.py"

    def __init__(self, retrieval: RetrievalSettings, query: QuerySettings, components: Components) -> None:
        self.retrieval, self.query, self.components = retrieval, query, components

    def run(self, turn: Turn) -> None:
        r, store = self.retrieval, self.components.store
        with turn.trace.stage("csqe", first_pass=self.query.csqe_hits) as info:
            first_legs = [Leg("dense", "dense", turn.vectors[0]), Leg("bm25", "sparse", turn.sparse[0])]
            if r.mode == "sparse":
                first_legs = first_legs[1:]
            first = store.query(
                first_legs, limit=self.query.csqe_hits, candidates=r.candidates, rrf_k=r.rrf_k, unit="passage", fusion=r.fusion
            )
            info["first_pass_ids"] = [f.unit_id for f in first]
            sentences = CorpusSteeredExpander(self.components.query_generator).select(
                turn.variants[0], [f.payload["text"] for f in first], info
            )
        turn.expansions.extend(sentences)

    def describe(self) -> str:
        return f"from the first {self.query.csqe_hits} passages"


class QueryLegs(Stage):
    """Every variant's dense and BM25 legs (the expansions folded into the first BM25 query), and each part's."""

    name, where = "query_legs", "retrievers/query_stages.py"
    reads = ("variants", "parts", "part_vectors", "dense", "sparse", "expansions", "hyde_used")
    writes = ("legs", "sparse", "part_legs")

    def __init__(self, retrieval: RetrievalSettings, query: QuerySettings, components: Components) -> None:
        self.retrieval, self.query, self.components = retrieval, query, components

    def run(self, turn: Turn) -> None:
        r, encode = self.retrieval, self.components.store.encode_query
        if turn.expansions:
            parts = [(turn.sparse[0], float(self.query.query_repeats))] + [(encode(t), 1.0) for t in turn.expansions]
            turn.sparse[0] = weighted_sum(parts)
        legs = []
        for i in range(len(turn.variants)):
            if r.mode != "sparse":
                name = f"q{i}.hyde" if i == 0 and turn.hyde_used else f"q{i}.dense"
                legs.append(Leg(name, "dense", turn.dense[i], r.dense_weight))
            if r.mode != "dense":
                name = f"q{i}.bm25+expansion" if i == 0 and turn.expansions else f"q{i}.bm25"
                legs.append(Leg(name, "sparse", turn.sparse[i], r.sparse_weight))
        turn.legs = legs
        turn.part_legs = [
            (text, tuple(plain_legs(f"part{i}", vector, text, r, self.components.store)))
            for i, (text, vector) in enumerate(zip(turn.parts, turn.part_vectors))
        ]

    def describe(self) -> str:
        r = self.retrieval
        return {"hybrid": "dense + BM25", "dense": "dense only", "sparse": "BM25 only"}[r.mode] + " per query"


class Metadata(Stage):
    """Sources and dates the question names: extra legs restricted to them (``boost``), or every leg
    restricted to the first of them (``filter``: a wrong guess finds nothing)."""

    name, reads, writes, where = "metadata", ("question", "legs", "vectors", "sparse"), ("legs",), "retrievers/query_analysis.py"

    def __init__(self, retrieval: RetrievalSettings, query: QuerySettings, components: Components) -> None:
        self.retrieval, self.query, self.components = retrieval, query, components
        self._sources: tuple[int, dict[str, list[str]]] | None = None

    def run(self, turn: Turn) -> None:
        with turn.trace.stage("metadata", mode=self.query.metadata) as info:
            mentions = analyse(turn.question, self.known_sources())
            info["sources"] = [{"field": m.field, "value": m.value, "said": m.said} for m in mentions.sources]
            info["dates"] = [{"from": m.range.start, "to": m.range.end, "said": m.said} for m in mentions.dates]
        if not mentions:
            return
        restrictions = _restrictions(mentions)
        if self.query.metadata == "filter":
            turn.legs = [replace(leg, where=restrictions[0]) for leg in turn.legs]
            return
        store = self.components.store
        for n, where in enumerate(restrictions):
            for leg in plain_legs(f"meta{n}", turn.vectors[0], turn.question, self.retrieval, store, turn.sparse[0]):
                turn.legs.append(replace(leg, where=where, weight=leg.weight * self.query.metadata_weight))

    def known_sources(self) -> dict[str, list[str]]:
        """The index's site and author values (facets), cached until this process next changes the store."""
        store = self.components.store
        if self._sources is None or self._sources[0] != store.generation:
            self._sources = (store.generation, {f: store.values(f) for f in ("site", "author")})
        return self._sources[1]

    def describe(self) -> str:
        q = self.query
        return f"{q.metadata}" + (f", weight ×{q.metadata_weight}" if q.metadata == "boost" else "")


class QueryPlanner(Stage):
    """The query steps as one stage: runs them, or reuses what they made of an identical question and
    conversation in this process (the evaluation retrieves, then answers, each question)."""

    name, reads, where = "query_plan", ("question", "history"), "retrievers/query_stages.py"
    writes = ("variants", "parts", "vectors", "part_vectors", "dense", "sparse", "legs", "part_legs")

    def __init__(self, stages: list[Stage]) -> None:
        self.inner = Pipeline(stages, given=(*GIVEN, *_DEFAULTED))
        self._plans: OrderedDict[tuple[str, tuple[Exchange, ...]], tuple[dict[str, Any], tuple[StageRecord, ...]]] = OrderedDict()

    def without(self, *names: str) -> QueryPlanner:
        return QueryPlanner([s for s in self.inner.stages if s.name not in names])

    def run(self, turn: Turn) -> None:
        key = (turn.question, tuple(turn.history))
        if (known := self._plans.get(key)) is not None:
            self._plans.move_to_end(key)
            planned, steps = known
            for name, value in planned.items():
                setattr(turn, name, list(value))
            turn.trace.stages.extend(replace(s, seconds=0.0, details={**s.details, "reused": True}) for s in steps)
            return
        before = len(turn.trace.stages)
        turn.variants, turn.parts, turn.expansions, turn.hyde_used = [turn.question], [], [], False  # _DEFAULTED
        for _ in self.inner.run(turn):
            pass  # the outer pipeline reports the records once this stage is done
        steps = tuple(turn.trace.stages[before:])
        if any(s.name in _LLM_STAGES for s in steps):
            self._plans[key] = ({name: list(getattr(turn, name)) for name in self.writes}, steps)
            if len(self._plans) > _PLANS_KEPT:
                self._plans.popitem(last=False)

    def plan(self, turn: Turn) -> QueryPlan:
        """The plan of a turn this stage has run on."""
        steps = tuple(s for s in turn.trace.stages if s.name in self.inner.names)
        return QueryPlan(tuple(turn.variants), tuple(turn.legs), turn.vectors[0], steps, tuple(turn.part_legs))

    def describe(self) -> str:
        return "the query steps, reused for an identical question and conversation"


def query_planner(
    retrieval: RetrievalSettings, query: QuerySettings, embedder_name: str, components: Components, llm: str = "the generator"
) -> QueryPlanner:
    """The query steps the settings turn on, in order, as one `QueryPlanner` stage (``llm``: the query
    generator's name, for the printed pipeline)."""
    q, mode = query, retrieval.mode
    stages: list[Stage] = []
    if q.rewrite:
        stages.append(Rewrite(q, components, llm))
    if q.decompose == "rules":
        stages.append(Decompose())
    stages.append(EmbedQuery(embedder_name, components))
    if q.hyde and mode != "sparse":
        stages.append(Hyde(q, components, llm))
    if (q.expansion != "off" or q.csqe) and mode != "dense":
        stages.append(Expand(q, components, llm))
        if q.csqe:
            stages.append(Csqe(retrieval, q, components))
    stages.append(QueryLegs(retrieval, q, components))
    if q.metadata != "off":
        stages.append(Metadata(retrieval, q, components))
    return QueryPlanner(stages)


def plain_legs(
    name: str, vector: np.ndarray, text: str, retrieval: RetrievalSettings, store: Store, sparse: SparseVec | None = None
) -> list[Leg]:
    """A query's dense and BM25 legs, as the retrieval mode asks, with no LLM step."""
    legs = []
    if retrieval.mode != "sparse":
        legs.append(Leg(f"{name}.dense", "dense", vector, retrieval.dense_weight))
    if retrieval.mode != "dense":
        encoded = sparse if sparse is not None else store.encode_query(text)
        legs.append(Leg(f"{name}.bm25", "sparse", encoded, retrieval.sparse_weight))
    return legs


def _restrictions(mentions: Mentions) -> list[tuple[tuple[str, Any], ...]]:
    """One restriction per source named (with the first date, when there is one), or per date alone."""
    date = (("date", mentions.dates[0].range),) if mentions.dates else ()
    if mentions.sources:
        return [((m.field, m.value), *date) for m in mentions.sources]
    return [(("date", m.range),) for m in mentions.dates]
