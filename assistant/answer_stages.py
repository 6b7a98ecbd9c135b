"""The answering stages: from the retrieved hits to the cited `Answer` (after `retrievers.hybrid`'s stages).

In order: select how many hits to keep (adaptive-k) → the relevance gate (abstain when nothing is close
enough) → compress the passages to a word budget → order the context for the generator → generate (the
text streams to the user) → check support and cite. Each is built once from the settings; `answer_stages`
leaves out the steps that are off.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from assistant.answering import finish_answer, needs_example
from assistant.compression import ContextCompressor
from assistant.config import Settings
from assistant.models.base import Embedder, Generator, Message
from assistant.ordering import ContextOrderer
from assistant.prompts import ABSTAIN_TEXT, STOP, build_messages, source_blocks
from assistant.selection import adaptive_k
from assistant.support import SupportChecker
from assistant.types import Answer, Hit
from retrievers.pipeline import Stage, Turn


class Models(Protocol):
    """The models the answering stages use, looked up only when they run (building loads nothing)."""

    @property
    def embedder(self) -> Embedder: ...

    @property
    def generator(self) -> Generator: ...


class Select(Stage):
    """Adaptive-k: the hits up to the largest gap in their cosines, at least ``retrieval.min_k``."""

    name, reads, writes, where = "select", ("hits",), ("hits",), "assistant/selection.py"

    def __init__(self, settings: Settings) -> None:
        self.min_k, self.top_k = settings.retrieval.min_k, settings.retrieval.top_k

    def run(self, turn: Turn) -> None:
        if not turn.hits:
            return
        with turn.trace.stage("select", max_k=len(turn.hits), min_k=self.min_k) as info:
            turn.hits = turn.hits[: adaptive_k([h.dense_score for h in turn.hits], min_k=self.min_k)]
            info["k"] = len(turn.hits)

    def describe(self) -> str:
        return f"adaptive-k, at least {self.min_k}, at most {self.top_k}"


class RelevanceGate(Stage):
    """Abstains ("The documents don't say.") when no hit's cosine to the question reaches the floor and
    nothing was recalled from the conversation; the generator is not asked."""

    name, reads, writes, where = "relevance_gate", ("hits", "recalled"), ("relevant", "answer"), "assistant/answer_stages.py"

    def __init__(self, settings: Settings, models: Models) -> None:
        self.configured, self.models = settings.retrieval.min_relevance, models

    @property
    def floor(self) -> float:
        """``retrieval.min_relevance``, else the embedder's calibrated floor."""
        return self.models.embedder.relevance_floor if self.configured is None else self.configured

    def run(self, turn: Turn) -> Iterator[str]:
        hits = turn.hits
        best = max((h.dense_score or 0.0 for h in hits), default=0.0)
        with turn.trace.stage("relevance_gate", best_dense_score=round(best, 4)) as info:
            documents = bool(hits) and best >= self.floor
            turn.relevant = documents or bool(turn.recalled)
            info.update(passed=turn.relevant, min_relevance=self.floor, documents_relevant=documents)
            info["memory_relevant"] = len(turn.recalled)
        if not turn.relevant:
            turn.answer = Answer(ABSTAIN_TEXT, (), tuple(hits), True, turn.trace)
            yield ABSTAIN_TEXT

    def describe(self) -> str:
        if self.configured is not None:
            return f"abstain below cosine {self.configured}"
        try:
            embedder = self.models.embedder  # built, not loaded, to read its floor
            return f"abstain below cosine {embedder.relevance_floor} ({embedder.name}'s)"
        except Exception:  # noqa: BLE001 - a missing model package: the pipeline still prints
            return "abstain below the embedder's cosine floor"


class Compress(Stage):
    """Each passage cut to its sentences most similar to the question, within a word budget."""

    name, reads, writes, where = "compress", ("question", "hits"), ("shown",), "assistant/compression.py"

    def __init__(self, settings: Settings, models: Models) -> None:
        self.budget, self.models = settings.context.budget_words, models

    def run(self, turn: Turn) -> None:
        turn.shown = ContextCompressor(self.models.embedder, self.budget).compress(turn.question, turn.hits, turn.trace)

    def describe(self) -> str:
        return f"{self.budget} words"


class Order(Stage):
    """The order the generator reads the sources in: attention sorting, best last, or retrieval order."""

    name, reads, writes, where = "order", ("question", "hits", "shown", "conversation"), ("hits", "shown"), "assistant/ordering.py"

    def __init__(self, settings: Settings, models: Models) -> None:
        self.order, self.rounds, self.models = settings.context.order, settings.context.sort_rounds, models

    def run(self, turn: Turn) -> None:
        shown = turn.shown or turn.hits
        whole = {id(s): h for s, h in zip(shown, turn.hits)}
        generator = self.models.generator
        example = needs_example(generator)

        def prompt_for(ordered: Sequence[Hit]) -> tuple[list[Message], list[str]]:
            return build_messages(turn.question, ordered, example=example, conversation=turn.conversation), source_blocks(ordered)

        turn.shown = ContextOrderer(self.order, self.rounds).arrange(shown, generator, prompt_for, turn.trace)
        turn.hits = [whole[id(s)] for s in turn.shown]  # the answer is checked against, and shows, whole passages

    def describe(self) -> str:
        return self.order + (f", {self.rounds} round(s)" if self.order == "attention" else "")


class Generate(Stage):
    """The generator answers from the numbered sources; its text streams to the user as it comes."""

    name, reads, writes, where = "generate", ("question", "hits", "shown", "conversation"), ("raw",), "assistant/models"

    def __init__(self, settings: Settings, models: Models) -> None:
        self.settings, self.models = settings.models, models

    def run(self, turn: Turn) -> Iterator[str]:
        generator = self.models.generator
        shown = turn.shown or turn.hits
        messages = build_messages(turn.question, shown, example=needs_example(generator), conversation=turn.conversation)
        pieces: list[str] = []
        with turn.trace.stage("generate", generator=generator.name) as info:
            for piece in generator.stream(
                messages, max_new_tokens=self.settings.max_new_tokens, temperature=self.settings.temperature, stop=STOP
            ):
                pieces.append(piece)
                yield piece
            turn.raw = info["raw"] = "".join(pieces)

    def describe(self) -> str:
        return f"{self.settings.generator} ({self.settings.runtime}), up to {self.settings.max_new_tokens} tokens"


class Cite(Stage):
    """Each sentence checked against the sources it cites; citations fixed or added where the check finds
    the source; an unsupported main claim withheld (``answer.unsupported=abstain``) or flagged (``warn``)."""

    name, reads, writes, where = "cite", ("question", "raw", "hits", "recalled"), ("answer",), "assistant/support.py + citations.py"

    def __init__(self, settings: Settings) -> None:
        self.coverage, self.unsupported = settings.answer.support_coverage, settings.answer.unsupported

    def run(self, turn: Turn) -> None:
        turn.answer = finish_answer(
            turn.raw, turn.hits, turn.trace, question=turn.question, checker=SupportChecker(self.coverage),
            on_unsupported=self.unsupported, recalled=turn.recalled,
        )

    def describe(self) -> str:
        return f"unsupported answers: {self.unsupported}"


def answer_stages(settings: Settings, models: Models) -> list[Stage]:
    """The answering stages the settings turn on, in order."""
    stages: list[Stage] = []
    if settings.retrieval.adaptive_k:
        stages.append(Select(settings))
    stages.append(RelevanceGate(settings, models))
    if settings.context.budget_words:
        stages.append(Compress(settings, models))
    stages += [Order(settings, models), Generate(settings, models), Cite(settings)]
    return stages
