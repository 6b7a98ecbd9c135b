"""The `Assistant`: answers one question from the indexed documents, with citations and a trace."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from assistant.answer_stages import answer_stages
from assistant.config import Settings
from assistant.models.base import Embedder, Generator
from assistant.types import Answer, Exchange, Hit, MemoryUnit, Trace, TurnEvent, final_answer
from retrievers.hybrid import check_query, retrieval_stages
from retrievers.pipeline import Pipeline, Turn
from retrievers.store import Store


class Assistant:
    """Retrieves passages for a question, asks the generator, and returns a cited `Answer`.

    A question runs through `pipeline`: the retrieval stages (`retrievers.hybrid.retrieval_stages`), then the
    answering stages (`assistant.answer_stages`), built once from the settings; `tessera config --pipeline`
    prints it. Models and the store are built from the settings on first use unless given (tests pass fakes).

    Args:
        settings: All of Tessera's settings.
        embedder: Overrides the embedder named in the settings.
        generator: Overrides the generator named in the settings.
        store: Overrides the store the settings point at.
        query_generator: Overrides ``query.generator`` for the query steps (the evaluation passes a cached one).
        without: Stages to take out of the pipeline (an ablation: ``("relevance_gate",)``); checked when the
            pipeline is built, so one that leaves a stage without its input fails with the reason.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        store: Store | None = None,
        query_generator: Generator | None = None,
        without: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.without = tuple(without)
        self._embedder = embedder
        self._generator = generator
        self._store = store
        self._query_generator: Generator | None = query_generator
        self._pipelines: tuple[Pipeline, Pipeline] | None = None
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
    def pipeline(self) -> Pipeline:
        """The stages a question runs through, from the query steps to the cited answer (built once)."""
        return self._built()[1]

    @property
    def retrieval(self) -> Pipeline:
        """The retrieval stages alone (`search`): the same stage objects as `pipeline`'s first ones."""
        return self._built()[0]

    def _built(self) -> tuple[Pipeline, Pipeline]:
        with self._building:
            if self._pipelines is None:
                # Building loads nothing: stages reach for the models and the store through this object
                # when they run.
                retrieval = retrieval_stages(self.settings, self)
                whole = Pipeline([*retrieval, *answer_stages(self.settings, self)]).without(*self.without)
                kept = [s for s in whole.stages if s.name in {r.name for r in retrieval}]
                self._pipelines = (Pipeline(kept), whole)
            return self._pipelines

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
        check_query(query)
        turn = Turn(query, trace if trace is not None else Trace(), tuple(history), top_k=top_k)
        for _ in self.retrieval.run(turn):
            pass
        return turn.hits

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
        turn = Turn(question, trace if trace is not None else Trace(), tuple(history), conversation, tuple(recalled))
        check_query(question)
        yield from (TurnEvent(stage=record) for record in turn.trace.stages)  # a caller's stages (memory recall)
        yield from self.pipeline.run(turn)

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
