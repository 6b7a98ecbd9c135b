"""Core types shared by every package (DESIGN.md, "Core types").

All are frozen dataclasses so a stage can hand them on without defensive copies. `to_dict` gives the
JSON shape the CLI (`--json`) and the evaluation reports write.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


def to_dict(obj: Any) -> Any:
    """Converts a (nested) dataclass into plain JSON-serialisable values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class Document:
    """One source file (or dataset record) as text.

    Attributes:
        id: Stable id: a hash of the source path (or the dataset's own id).
        source: Where it came from: an absolute file path or a dataset id.
        title: A human title (file name, HTML <title>, first heading).
        text: The full extracted text.
        metadata: Loader extras, e.g. ``{"pages": [[start, end, page_no], ...], "sections": [...]}``.
    """

    id: str
    source: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """A contiguous span of a document's text: the unit that is embedded and retrieved.

    Attributes:
        id: Unique id (``{doc_id}:{index}``).
        doc_id: The document it belongs to.
        text: The passage text (``document.text[start:end]``).
        start: Character offset of the first character in the document text.
        end: Character offset one past the last character.
        page: 1-based page number for paged formats (PDF), else None.
        heading: The nearest section heading above the passage, if the format has headings.
    """

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class Proposition:
    """An atomic, self-contained statement extracted from a passage (Dense X Retrieval).

    Attributes:
        id: Unique id (``{passage_id}:p{index}``).
        passage_id: The passage it was extracted from.
        doc_id: The document holding that passage.
        text: The decontextualised statement (may differ from the source words).
        start: Character offset in the document text of the source span it was derived from.
        end: One past the last character of that span.
    """

    id: str
    passage_id: str
    doc_id: str
    text: str
    start: int = 0
    end: int = 0


@dataclass(frozen=True)
class Query:
    """A question and the variants (rewrites, expansions) retrieval runs for it."""

    text: str
    variants: tuple[str, ...] = ()
    conversation_id: str | None = None


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of a conversation: what was asked and what was answered."""

    question: str
    answer: str


@dataclass(frozen=True)
class Hit:
    """One retrieved unit with its score and where it came from.

    Attributes:
        unit_id: Id of the retrieved unit (a passage or proposition id).
        text: The text the generator sees (the unit's own text, or its passage's, per ``context.unit``).
        score: The retriever's score (fused RRF score for hybrid search; higher is better).
        source: The source file path (or dataset id) of the document.
        passage_id: The passage holding the unit.
        doc_id: The document holding the unit.
        title: The document title.
        page: Page number, for paged formats.
        heading: Section heading, where the format has them.
        dense_score: Cosine similarity of the unit to the query (the relevance signal abstention uses).
    """

    unit_id: str
    text: str
    score: float
    source: str
    passage_id: str
    doc_id: str
    title: str = ""
    page: int | None = None
    heading: str | None = None
    dense_score: float | None = None

    @property
    def location(self) -> str:
        """A short human pointer: ``file.pdf, page 3`` or ``guide.md § Install``."""
        where = self.source.rsplit("/", 1)[-1] or self.source
        if self.page is not None:
            where += f", page {self.page}"
        if self.heading:
            where += f" § {self.heading}"
        return where


@dataclass(frozen=True)
class Citation:
    """A ``[n]`` marker in an answer and the source it points to."""

    n: int
    hit: Hit


@dataclass(frozen=True)
class StageRecord:
    """What one pipeline stage did: its name, timing and a small JSON-able summary."""

    name: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


class StageClock:
    """Seconds spent per named stage of a long job (ingestion's profile), summed over its calls. Stages timed
    in different threads add up their own time, so shares can sum to more than the wall time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - began


@dataclass
class Trace:
    """The per-stage record of one run of a pipeline. Mutable: stages append as they run.

    Attributes:
        stages: What each stage did and how long it took, in the order they finished.
        pipeline: The names of the pipeline's stages, in order (`retrievers.pipeline.Pipeline`); a stage
            that did nothing for this question (a rewrite without a conversation) has no record.
    """

    stages: list[StageRecord] = field(default_factory=list)
    pipeline: tuple[str, ...] = ()

    @contextmanager
    def stage(self, name: str, **details: Any) -> Iterator[dict[str, Any]]:
        """Times a block and records it; the block may add to the yielded details dict."""
        info: dict[str, Any] = dict(details)
        began = time.perf_counter()
        try:
            yield info
        finally:
            self.stages.append(StageRecord(name, time.perf_counter() - began, info))

    def seconds(self, name: str) -> float:
        """Total seconds spent in stages called ``name``."""
        return sum(s.seconds for s in self.stages if s.name == name)


@dataclass(frozen=True)
class Answer:
    """The assistant's reply to one question.

    Attributes:
        text: The answer text, with ``[n]`` citation markers.
        citations: The sources the answer cites, in marker order.
        contexts: Every source shown to the generator, numbered from 1 in this order.
        abstained: True when the assistant said the documents do not cover the question.
        trace: What each stage did and how long it took.
        unsupported: Sentences of the answer that no citation supports (flagged, not removed).
    """

    text: str
    citations: tuple[Citation, ...]
    contexts: tuple[Hit, ...]
    abstained: bool
    trace: Trace
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class TurnEvent:
    """One event of a streamed turn (`Assistant.stream`, `ChatSession.stream`); exactly one field is set.

    In order: each stage as it finishes (``stage``: retrieval steps, the relevance gate, ordering,
    generation...), pieces of the answer text as they are generated (``text``), and last the final
    ``answer`` (whose text may differ from the pieces: invalid citation markers removed, a citation added).
    """

    text: str = ""
    stage: StageRecord | None = None
    answer: Answer | None = None


def final_answer(events: Iterator[TurnEvent]) -> Answer:
    """Runs a turn to its end and returns its answer.

    Raises:
        RuntimeError: The stream ended without an answer (a broken pipeline, never a normal turn).
    """
    answer = None
    for event in events:
        if event.answer is not None:
            answer = event.answer
    if answer is None:
        raise RuntimeError("the turn ended without an answer")
    return answer


@dataclass(frozen=True)
class MemoryUnit:
    """One remembered item of a conversation at some granularity.

    Attributes:
        id: Unique id of the unit.
        granularity: ``turn`` (one exchange), ``summary`` (of a session) or ``fact`` (a keyword fact).
        text: What is remembered.
        session_id: The session it came from.
        turn_ids: The turns it was made from (a turn: itself; a summary: its session's turns).
        created_at: Unix time it was stored.
        user_id: Whose memory it is; recall never crosses users.
    """

    id: str
    granularity: str
    text: str
    session_id: str
    turn_ids: tuple[str, ...]
    created_at: float
    user_id: str = ""
