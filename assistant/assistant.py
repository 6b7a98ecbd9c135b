"""The `Assistant`: answers one question from the indexed documents, with citations and a trace."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace

from assistant.citations import cited_numbers, citations_for, recite, strip_invalid, strip_markers
from assistant.compression import ContextCompressor
from assistant.support import Support, SupportChecker
from assistant.config import Settings
from assistant.models.base import Embedder, Generator
from assistant.models.base import Message
from assistant.ordering import ContextOrderer
from assistant.prompts import ABSTAIN_TEXT, STOP, build_messages, clean_answer, source_blocks
from assistant.selection import adaptive_k
from assistant.types import Answer, Exchange, Hit, MemoryUnit, Trace, TurnEvent, final_answer
from retrievers.hybrid import HybridRetriever
from retrievers.store import Store

# Ways a model says the sources don't hold the answer (ours, and common paraphrases of it).
_ABSTAIN = re.compile(
    r"documents? (do not|don't|does not|doesn't) (say|mention|contain)|"
    r"(sources?|context|passages?) (do not|don't|does not|doesn't) (say|mention|contain)|"
    r"\b(cannot|can't|unable to) (be )?(answer|determine|find)|no information|not (mentioned|provided|stated)|"
    r"\b(i|we) (do not|don't) know\b",
    re.IGNORECASE,
)


# What is left of an answer once its citation markers and punctuation are gone; empty means no answer.
_MARKERS_ONLY = re.compile(r"\[\s*\d+\s*\]|[\W_]+")


def is_abstention(text: str) -> bool:
    """True when a generated answer declines to answer, is empty, or is only citation markers ("[1]")."""
    return not _MARKERS_ONLY.sub("", text) or bool(_ABSTAIN.search(text))


def unquote_header(text: str, hits: Sequence[Hit]) -> str:
    """An answer that starts by copying a source's header (``[2] Oxygen: ...``, the prompt's own layout)
    keeps the text and cites that source at the end instead: ``... [2]``."""
    match = re.match(r"\s*\[(\d+)\]\s*", text)
    if not match or not 1 <= int(match.group(1)) <= len(hits):
        return text
    n = int(match.group(1))
    rest = text[match.end() :]
    title = (hits[n - 1].title or hits[n - 1].location).strip()
    if title and rest.lower().startswith(title.lower() + ":"):
        rest = rest[len(title) + 1 :].strip()
    return f"{rest.rstrip()} [{n}]" if rest.strip() else text


def finish_answer(
    raw: str,
    hits: list[Hit],
    trace: Trace,
    *,
    question: str = "",
    checker: SupportChecker | None = None,
    on_unsupported: str = "warn",
    recalled: Sequence[MemoryUnit] = (),
) -> Answer:
    """Turns generated text into an `Answer`: abstention detected, citations checked, support measured.

    Every sentence is checked against the sources it cites (uncited: against all of them) by
    `SupportChecker`. A citation the model did not write is added only where that check finds the source,
    never from word overlap alone; an answer nothing supports stays uncited and is shown as unverified.
    A sentence no document supports but a ``recalled`` memory unit does rests on the conversation: it is
    not flagged, and the trace names the session it came from. When the main claim (the first sentence)
    is unsupported, ``on_unsupported="abstain"`` answers "The documents don't say." instead (the trace
    keeps the withheld text); ``"warn"`` keeps the answer with its unsupported sentences listed.
    """
    checker = checker or SupportChecker()
    with trace.stage("cite") as info:
        if is_abstention(raw):
            info["abstained"] = True
            return Answer(ABSTAIN_TEXT, (), tuple(hits), True, trace)
        text, dropped = strip_invalid(unquote_header(clean_answer(raw), hits), len(hits))
        numbers = cited_numbers(text)
        verdicts = checker.check(text, hits, question)
        # A fact the model read in one source and numbered as another cites the source that holds it.
        recited = [v for v in verdicts if v.supported and v.cited and v.source not in v.cited]
        for v in recited:
            text = text.replace(v.sentence, recite(v.sentence, v.source), 1)
        if recited:
            numbers = cited_numbers(text)
            info["recited"] = [{"sentence": v.sentence, "cited": list(v.cited), "found": v.source} for v in recited]
        info.update(dropped=dropped, cited=numbers, attributed=False)
        main = verdicts[0] if verdicts else None
        if not numbers and main is not None and main.supported and main.source is not None:
            text, numbers = f"{text} [{main.source}]", [main.source]
            info.update(cited=numbers, attributed=True)
        verdicts, from_memory = _rest_on_memory(verdicts, recalled, checker, question)
        if from_memory:
            info["from_memory"] = from_memory
        main = verdicts[0] if verdicts else None
        unsupported = [v.sentence for v in verdicts if not v.supported]
        info["support"] = [
            {"sentence": v.sentence, "source": v.source, "coverage": round(v.coverage, 2), "missing": list(v.missing), "supported": v.supported}
            for v in verdicts
        ]
        info.update(supported=(bool(numbers) or bool(from_memory)) and not unsupported, unsupported=unsupported)
        if main is not None and not main.supported and on_unsupported == "abstain":
            info.update(abstained="unsupported", withheld=text)
            return Answer(ABSTAIN_TEXT, (), tuple(hits), True, trace)
    return Answer(text, citations_for(numbers, hits), tuple(hits), False, trace, tuple(unsupported))


def _rest_on_memory(
    verdicts: list[Support], recalled: Sequence[MemoryUnit], checker: SupportChecker, question: str
) -> tuple[list[Support], list[dict[str, str]]]:
    """Sentences no document supports, checked against the recalled conversation: those it supports are
    marked supported, and where they came from is returned for the trace and the interfaces.

    Only what the user said is evidence. The assistant's own earlier replies are not: an unverified answer
    recalled next time would otherwise vouch for itself ("From the conversation") and pass as supported.
    """
    remembered = [Hit(u.id, users_words(u.text), 1.0, f"session {u.session_id}", u.id, u.session_id) for u in recalled]
    if not remembered:
        return verdicts, []
    given = checker.premises(question)
    out, found = [], []
    for v in verdicts:
        check = None if v.supported else checker.check_sentence(strip_markers(v.sentence), remembered, given)
        if check is not None and check.supported and check.source is not None:
            unit = recalled[check.source - 1]
            found.append({"sentence": v.sentence, "session": unit.session_id, "unit": unit.id, "text": unit.text[:300]})
            v = replace(v, supported=True)
        out.append(v)
    return out, found


_ASSISTANT_PART = re.compile(r"(?:^|\n)Assistant:.*?(?=\nUser:|\Z)", re.DOTALL)


def users_words(text: str) -> str:
    """A memory unit's text without the assistant's replies (``User: … / Assistant: …`` turns)."""
    return _ASSISTANT_PART.sub("", text).strip()


def needs_example(generator: Generator) -> bool:
    """Base models (no chat template) get a worked example in the prompt; instruct models don't."""
    return not getattr(generator, "has_chat_template", True)


class Assistant:
    """Retrieves passages for a question, asks the generator, and returns a cited `Answer`.

    Components are built from the settings on first use unless given (tests pass fakes).

    Args:
        settings: All of Tessera's settings.
        embedder: Overrides the embedder named in the settings.
        generator: Overrides the generator named in the settings.
        store: Overrides the store the settings point at.
        query_generator: Overrides ``query.generator`` for the query steps (the evaluation passes a cached one).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        store: Store | None = None,
        query_generator: Generator | None = None,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        self._generator = generator
        self._store = store
        self._query_generator: Generator | None = query_generator
        self._retriever: HybridRetriever | None = None
        # The warm-up thread and the first question may both reach for a component: it is built once (a
        # bundled GGUF assembled twice into the same paths would corrupt it).
        self._building = threading.RLock()

    @property
    def embedder(self) -> Embedder:
        with self._building:
            if self._embedder is None:
                from assistant.models.registry import create_embedder

                self._embedder = create_embedder(self.settings)
            return self._embedder

    @property
    def generator(self) -> Generator:
        with self._building:
            if self._generator is None:
                from assistant.models.registry import create_generator

                self._generator = create_generator(self.settings)
            return self._generator

    @property
    def store(self) -> Store:
        with self._building:
            if self._store is None:
                from retrievers.store import open_store

                self._store = open_store(self.settings)
            return self._store

    @property
    def query_generator(self) -> Generator:
        """The generator of the query steps: ``query.generator`` if set, else the answering one."""
        with self._building:
            if self._query_generator is None:
                name = self.settings.query.generator
                if name is None or name == self.settings.models.generator:
                    self._query_generator = self.generator
                else:
                    from assistant.models.registry import create_generator

                    self._query_generator = create_generator(self.settings, name)
            return self._query_generator

    @property
    def retriever(self) -> HybridRetriever:
        with self._building:
            if self._retriever is None:
                s = self.settings
                self._retriever = HybridRetriever(
                    self.store, self.embedder, s.retrieval, s.context, query=s.query, generator=lambda: self.query_generator
                )
            return self._retriever

    @property
    def min_relevance(self) -> float:
        """The relevance gate's cosine floor: ``retrieval.min_relevance``, else the embedder's calibrated one."""
        configured = self.settings.retrieval.min_relevance
        return self.embedder.relevance_floor if configured is None else configured

    def search(
        self,
        query: str,
        trace: Trace | None = None,
        *,
        top_k: int | None = None,
        history: Sequence[Exchange] = (),
    ) -> list[Hit]:
        """The passages retrieval finds for ``query``, best first, without generating.

        Args:
            query: The question.
            trace: Where to record every query step, leg and the fused list (a fresh one if None).
            top_k: Overrides ``retrieval.top_k``.
            history: Earlier exchanges of the conversation, oldest first, for rewriting a follow-up.
        """
        return self.retriever.retrieve(query, trace, top_k=top_k, history=history)

    def stream(
        self,
        question: str,
        *,
        history: Sequence[Exchange] = (),
        conversation: str = "",
        recalled: Sequence[MemoryUnit] = (),
        trace: Trace | None = None,
    ) -> Iterator[TurnEvent]:
        """Yields the turn's events (`TurnEvent`): each stage as it finishes, the answer text as it is generated,
        then the final `Answer` as the last event.

        The final answer's text may differ from the streamed pieces: invalid citation markers are removed
        and an uncited answer gets the citation of the source it was taken from.

        Args:
            question: The user's question.
            history: Earlier exchanges of this conversation, oldest first (rewrites a follow-up).
            conversation: The recalled "conversation so far" block for the prompt (from the user's memory).
            recalled: The memory units in that block: evidence too. When any was recalled, the relevance
                gate asks the model even if no document is relevant, and an answer they support is not flagged.
            trace: A trace to continue (memory recall records into it first); a fresh one if None.
        """
        trace = trace if trace is not None else Trace()
        told = 0  # stages already reported

        def finished() -> Iterator[TurnEvent]:
            nonlocal told
            for record in trace.stages[told:]:
                yield TurnEvent(stage=record)
            told = len(trace.stages)

        yield from finished()  # a caller's stages (memory recall)
        hits = self.search(question, trace, history=history)
        yield from finished()
        retrieval = self.settings.retrieval
        if retrieval.adaptive_k and hits:
            with trace.stage("select", max_k=len(hits), min_k=retrieval.min_k) as info:
                hits = hits[: adaptive_k([h.dense_score for h in hits], min_k=retrieval.min_k)]
                info["k"] = len(hits)
        best = max((h.dense_score or 0.0 for h in hits), default=0.0)
        with trace.stage("relevance_gate", best_dense_score=round(best, 4)) as info:
            documents = bool(hits) and best >= self.min_relevance
            relevant = documents or bool(recalled)
            info["passed"] = relevant
            info["min_relevance"] = self.min_relevance
            info["documents_relevant"] = documents
            info["memory_relevant"] = len(recalled)
        yield from finished()
        if not relevant:
            yield TurnEvent(text=ABSTAIN_TEXT)
            yield TurnEvent(answer=Answer(ABSTAIN_TEXT, (), tuple(hits), True, trace))
            return

        example = needs_example(self.generator)

        def prompt_for(ordered: Sequence[Hit]) -> tuple[list[Message], list[str]]:
            return build_messages(question, ordered, example=example, conversation=conversation), source_blocks(ordered)

        context = self.settings.context
        shown = hits
        if context.budget_words:
            shown = ContextCompressor(self.embedder, context.budget_words).compress(question, hits, trace)
        whole = {id(s): h for s, h in zip(shown, hits)}
        shown = ContextOrderer(context.order, context.sort_rounds).arrange(shown, self.generator, prompt_for, trace)
        yield from finished()
        messages = build_messages(question, shown, example=example, conversation=conversation)
        hits = [whole[id(s)] for s in shown]  # the answer is checked against, and shows, whole passages
        pieces: list[str] = []
        with trace.stage("generate", generator=self.generator.name) as info:
            for piece in self.generator.stream(
                messages,
                max_new_tokens=self.settings.models.max_new_tokens,
                temperature=self.settings.models.temperature,
                stop=STOP,
            ):
                pieces.append(piece)
                yield TurnEvent(text=piece)
            info["raw"] = "".join(pieces)
        yield from finished()
        answer = self.settings.answer
        final = finish_answer(
            "".join(pieces),
            hits,
            trace,
            question=question,
            checker=SupportChecker(answer.support_coverage),
            on_unsupported=answer.unsupported,
            recalled=recalled,
        )
        yield from finished()  # the support check and citations
        yield TurnEvent(answer=final)

    def ask(self, question: str, *, history: Sequence[Exchange] = (), conversation: str = "") -> Answer:
        """Answers ``question`` (the last event of `stream`)."""
        return final_answer(self.stream(question, history=history, conversation=conversation))

    def warm_up(self, *, generator: bool = True) -> None:
        """Loads the models and opens the store now, so the first question does not wait for them.

        The chat UIs call this in a background thread at start-up, while the user types; the first query of a
        cold process otherwise pays the embedder's load and first-call costs (docs/BENCHMARKS.md).

        Args:
            generator: Also load a local generator's weights (seconds); endpoints have nothing to load.
        """
        self.search("warm up")
        load = getattr(self.generator, "load", None) if generator else None
        if callable(load):
            load()

    def preload_generator(self) -> threading.Thread:
        """Starts loading a local generator's weights in a background thread and returns the thread.

        `tessera ask` calls this first: the generator loads while the question is embedded and searched (the
        embedder's load and torch's import are most of that time), instead of after them. A failure here is
        left for the answering call to report; join the thread before exiting.
        """

        def load() -> None:
            try:
                if callable(loader := getattr(self.generator, "load", None)):
                    loader()
            except Exception:  # noqa: BLE001 - the same load runs again when the answer is generated, and says why
                pass

        thread = threading.Thread(target=load, name="tessera-generator-load", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Releases the store (the embedded Qdrant shard lock)."""
        if self._store is not None:
            self._store.close()
