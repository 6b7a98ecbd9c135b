"""Stages and the pipeline that runs them: one question's way from the prompt to the answer, as objects.

Modelled on Haystack 2's components and PyTerrier's transformers, kept to what Tessera needs:

- a `Stage` has a ``name`` (its record in the trace), declares the `Turn` fields it ``reads`` and ``writes``,
  and does its work in one ``run(turn)``; it is built once from the settings, and a step that is off is not
  built at all, so the pipeline holds exactly what runs;
- a `Pipeline` is an ordered list of stages. Building one checks that every stage's inputs are given or
  written by an earlier stage, so a pipeline with a stage taken out (an ablation: `Pipeline.without`) either
  runs or says at once which stage lacks what. It prints itself (`Pipeline.lines`, `tessera config --pipeline`),
  and every trace names the stages it ran;
- a `Turn` is the one mutable record every stage reads from and writes to (the question, the query plan,
  the hits, the context shown, the answer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from assistant.types import Answer, Exchange, Hit, MemoryUnit, Trace, TurnEvent
from retrievers.points import Leg
from retrievers.sparse import SparseVec

# What a turn starts with; everything else is written by a stage. ``shown`` starts empty: the context is the
# hits themselves until a compression stage writes shortened texts.
GIVEN = ("question", "history", "conversation", "recalled", "top_k", "trace", "shown")


class PipelineError(ValueError):
    """A pipeline that cannot run: a stage reads what no earlier stage writes (the message names both)."""


@dataclass
class Turn:
    """One question's state as the stages fill it in, in pipeline order.

    Attributes:
        question: The user's question (or search text).
        trace: Where each stage records what it did and how long it took.
        history: Earlier exchanges of the conversation, oldest first (rewrites a follow-up).
        conversation: The recalled "conversation so far" block for the prompt.
        recalled: The memory units in that block (evidence too).
        top_k: How many hits to keep (``retrieval.top_k`` when None).
        variants: The query texts retrieved: the question, or its standalone rewrites.
        parts: A multi-part question's sub-queries.
        vectors: Each variant's own embedding (the relevance gate judges the first).
        part_vectors: Each part's embedding.
        dense: The dense legs' vectors (HyDE replaces the first).
        sparse: The BM25 legs' vectors (expansion replaces the first).
        expansions: Texts the expansion steps add to the first BM25 query.
        hyde_used: Whether HyDE wrote the first dense leg's vector (the leg is named for it).
        legs: Every dense and BM25 leg, in fusion order.
        part_legs: Each part's own legs.
        hits: The ranked units retrieval found, then those selected for the context.
        relevant: Whether the relevance gate let the turn through to the generator.
        shown: The context as the prompt shows it when compression shortened it (empty: the hits themselves);
            ordering puts ``shown`` and ``hits`` in the generator's order together.
        raw: The generated text, before citations are checked.
        answer: The final answer; a stage that sets it ends the turn (the gate abstaining).
    """

    question: str
    trace: Trace = field(default_factory=Trace)
    history: tuple[Exchange, ...] = ()
    conversation: str = ""
    recalled: tuple[MemoryUnit, ...] = ()
    top_k: int | None = None
    variants: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    part_vectors: list[np.ndarray] = field(default_factory=list)
    dense: list[np.ndarray] = field(default_factory=list)
    sparse: list[SparseVec] = field(default_factory=list)
    expansions: list[str] = field(default_factory=list)
    hyde_used: bool = False
    legs: list[Leg] = field(default_factory=list)
    part_legs: list[tuple[str, tuple[Leg, ...]]] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    relevant: bool | None = None
    shown: list[Hit] = field(default_factory=list)
    raw: str = ""
    answer: Answer | None = None


TURN_FIELDS = frozenset(f.name for f in fields(Turn))


class Stage(ABC):
    """One step of a turn. Subclasses set the class attributes and implement `run`.

    Attributes:
        name: The step's name in the trace and the printed pipeline.
        reads: The `Turn` fields it needs.
        writes: The `Turn` fields it sets.
        where: The module that holds the method, for a reader of the printed pipeline.
        inner: The stages a composite stage runs (`retrievers.query_stages.QueryPlanner`), else None.
    """

    name: str = ""
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    where: str = ""
    inner: Pipeline | None = None  # a stage made of stages (the query plan) prints and traces them

    @abstractmethod
    def run(self, turn: Turn) -> Iterable[str] | None:
        """Does the step; a stage that generates text returns its pieces (streamed to the user as they come)."""

    def describe(self) -> str:
        """What this instance does, with the settings that shape it (one short phrase)."""
        return ""

    def lines(self, number: str, indent: int = 0) -> list[str]:
        """The stage as the printed pipeline shows it: what it does, then the fields it reads → writes."""
        head = f"{' ' * indent}{number:>3}. {self.name:<15} {self.describe()}  [{self.where}]"
        flow = f"{', '.join(self.reads) or '-'} → {', '.join(self.writes) or '-'}"
        return [head, f"{' ' * (indent + 21)}{flow}"]


class Pipeline:
    """Stages in the order they run, checked once when built.

    Args:
        stages: The stages, first to run first.
        given: The `Turn` fields set before the first stage runs.

    Raises:
        PipelineError: A stage reads a field nothing before it writes, or declares a field `Turn` lacks.
    """

    def __init__(self, stages: Sequence[Stage], given: Sequence[str] = GIVEN) -> None:
        self.stages = tuple(stages)
        self.given = tuple(given)
        available, before = set(given), []
        for stage in self.stages:
            unknown = [f for f in (*stage.reads, *stage.writes) if f not in TURN_FIELDS]
            if unknown:
                raise PipelineError(f"stage {stage.name!r} declares {unknown}, which a Turn does not have")
            missing = [f for f in stage.reads if f not in available]
            if missing:
                raise PipelineError(
                    f"stage {stage.name!r} reads {', '.join(missing)}, which no stage before it writes "
                    f"(before it: {', '.join(before) or 'nothing'}); put back the stage that writes it"
                )
            available.update(stage.writes)
            before.append(stage.name)

    @property
    def names(self) -> tuple[str, ...]:
        """The stages' names, a composite stage's own stages in its place."""
        return tuple(n for s in self.stages for n in (s.inner.names if s.inner is not None else (s.name,)))

    def without(self, *names: str) -> Pipeline:
        """This pipeline with the named stages taken out (an ablation), checked again.

        Raises:
            PipelineError: A name is not a stage of this pipeline, or what is left cannot run.
        """
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise PipelineError(f"no stage named {', '.join(unknown)}; the stages are {', '.join(self.names)}")
        kept = []
        for stage in self.stages:
            if stage.inner is not None and set(names) & set(stage.inner.names):
                stage = stage.without(*(n for n in names if n in stage.inner.names))  # type: ignore[attr-defined]
            if stage.name not in names:
                kept.append(stage)
        return Pipeline(kept, self.given)

    def run(self, turn: Turn) -> Iterator[TurnEvent]:
        """Runs the stages on ``turn`` and yields each trace record as its stage finishes, the generated text
        as it comes, and the final answer last when a stage set one. A stage that sets ``turn.answer`` ends
        the turn there."""
        if not turn.trace.pipeline:
            turn.trace.pipeline = self.names
        told = len(turn.trace.stages)
        for stage in self.stages:
            pieces = stage.run(turn)
            for piece in pieces or ():
                yield TurnEvent(text=piece)
            for record in turn.trace.stages[told:]:
                yield TurnEvent(stage=record)
            told = len(turn.trace.stages)
            if turn.answer is not None:
                break
        if turn.answer is not None:
            yield TurnEvent(answer=turn.answer)

    def lines(self) -> list[str]:
        """The pipeline as numbered lines: each stage, what it does, what it reads and writes, and where."""
        lines = []
        for n, stage in enumerate(self.stages, 1):
            if stage.inner is None:
                lines += stage.lines(str(n))
                continue
            lines.append(f"{n:>3}. {stage.name:<15} {stage.describe()}  [{stage.where}]")
            for i, inner in enumerate(stage.inner.stages):
                lines += inner.lines(f"{n}{chr(ord('a') + i)}", indent=4)
        return lines

    def __repr__(self) -> str:
        return f"Pipeline({' → '.join(self.names)})"
