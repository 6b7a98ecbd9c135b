"""RAGAS metrics for answered questions, computed offline unless a judge model is configured.

Every metric is computed by ragas 0.4.3 itself, through each metric's ``single_turn_ascore``, one sample
and one metric at a time. We use ragas' *legacy* metric classes (``ragas.metrics._*``, the ones
``ragas.evaluate`` runs) rather than ``ragas.metrics.collections``, because:

- the collections have no ``NonLLMContextRecall``/``NonLLMContextPrecisionWithReference``;
- the collections' LLM metrics accept only an ``InstructorBaseRagasLLM`` and their ``SemanticSimilarity``
  only a modern ``BaseRagasEmbedding`` (``LlamaIndexEmbeddingsWrapper`` is rejected), while the legacy
  ones take a ``BaseRagasLLM`` subclass — our `Generator` behind `as_ragas_llm` — and
  ``LlamaIndexEmbeddingsWrapper`` over `eval.vanilla.LlamaIndexEmbedding`.

``ragas.evaluate`` is not used: it only reports a failed cell as NaN (the reason is lost), it needs
identical columns in every sample, and without ``llm=`` it silently builds an OpenAI client. Scoring one
cell at a time in a fixed order also keeps judge calls sequential and deterministic (our generators are
synchronous anyway). A metric that cannot be computed is a `MetricValue` with ``value=None`` and a reason;
``score`` never raises for a judge's invalid JSON or a model error and never turns a failure into 0.
"""

from __future__ import annotations

import asyncio
import math
import os
import warnings
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from tqdm import tqdm

from assistant.models.base import Embedder, Generator, Message

# Before any ragas import (ragas is imported on first use): ragas posts usage analytics unless told not to.
os.environ["RAGAS_DO_NOT_TRACK"] = "true"

NO_JUDGE = "no judge model configured (set eval.judge)"
NO_EMBEDDER = "no embedder configured"
NO_REFERENCE = "no reference answer"
NO_REFERENCE_CONTEXTS = "no reference contexts"
NO_CONTEXTS = "no retrieved contexts"
NO_ANSWER = "empty answer (an abstention): nothing to judge"
NOT_REQUESTED = "not requested"
_REASON_CHARS = 300
_T = TypeVar("_T")


@dataclass(frozen=True)
class RagasSample:
    """One answered question, as ragas sees it.

    Attributes:
        question: The user's question (ragas ``user_input``).
        answer: The answer text, citations stripped (ragas ``response``); ``""`` for an abstention.
        contexts: The passages the generator saw, in prompt order (ragas ``retrieved_contexts``).
        reference: The gold answer, or None when there is none (an unanswerable question).
        reference_contexts: The gold evidence passages, or None when the dataset has none.
    """

    question: str
    answer: str
    contexts: list[str]
    reference: str | None = None
    reference_contexts: list[str] | None = None


@dataclass(frozen=True)
class MetricValue:
    """A metric's value for one sample; ``value`` None means missing and ``reason`` says why."""

    value: float | None
    reason: str | None = None


@dataclass(frozen=True)
class _Spec:
    name: str  # ragas' own metric name, so reports read like ragas' docs
    needs: tuple[str, ...]  # checked in this order; the first unmet one is the missing reason
    nan_hint: str = ""  # what ragas' NaN means for this metric


_SPECS = (
    _Spec("non_llm_context_recall", ("reference_contexts", "contexts")),
    _Spec("non_llm_context_precision_with_reference", ("reference_contexts", "contexts")),
    _Spec("exact_match", ("reference",)),
    _Spec("string_present", ("reference",)),
    _Spec("rouge_score", ("reference",)),
    _Spec("bleu_score", ("reference",)),
    _Spec("chrf_score", ("reference",)),
    _Spec("semantic_similarity", ("embedder", "reference")),
    _Spec("faithfulness", ("judge", "answer", "contexts"), "the judge found no statements in the answer"),
    _Spec("answer_relevancy", ("judge", "embedder", "answer"), "the judge wrote only empty questions"),
    _Spec("llm_context_precision_with_reference", ("judge", "reference", "contexts")),
    _Spec("context_recall", ("judge", "reference", "contexts"), "the judge classified no statements"),
)

METRIC_NAMES = tuple(spec.name for spec in _SPECS)
JUDGED_METRICS = tuple(spec.name for spec in _SPECS if "judge" in spec.needs)


class RagasEvaluator:
    """Scores answered questions with ragas' metrics.

    Non-LLM metrics (string and context overlap) are always computed; ``semantic_similarity`` needs an
    embedder; the LLM-judged ones (``faithfulness``, ``answer_relevancy`` — which also needs the
    embedder — ``llm_context_precision_with_reference``, ``context_recall``) need a judge. Every metric
    appears for every sample; missing ones say why (no judge, no embedder, no reference answer, no
    reference or retrieved contexts, or an empty answer for the two metrics that judge the answer).

    Args:
        embedder: Embeds texts for ``semantic_similarity`` and ``answer_relevancy``.
        judge: Generator that answers ragas' JSON prompts; must write valid JSON (the bundled 135M/270M
            models cannot).
        judge_max_new_tokens: Most tokens per judge reply.
        skip: Metrics not to compute (names from `metric_names`), each with the reason it is missing.
        no_judge_reason: Why the judged metrics are missing when ``judge`` is None.

    Example:
        >>> ev = RagasEvaluator(FakeEmbedder())  # doctest: +SKIP
        >>> row = ev.score([RagasSample("Capital?", "Paris", [], "Paris", None)])[0]  # doctest: +SKIP
        >>> row["exact_match"]  # doctest: +SKIP
        MetricValue(value=1.0, reason=None)
        >>> row["faithfulness"].reason  # doctest: +SKIP
        'no judge model configured (set eval.judge)'
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        judge: Generator | None = None,
        *,
        judge_max_new_tokens: int = 512,
        skip: Mapping[str, str] | None = None,
        no_judge_reason: str = NO_JUDGE,
    ) -> None:
        if embedder is not None and not isinstance(embedder, Embedder):
            raise TypeError(f"embedder must be an assistant.models.base.Embedder or None, got {embedder!r}")
        if judge is not None and not isinstance(judge, Generator):
            raise TypeError(f"judge must be an assistant.models.base.Generator or None, got {judge!r}")
        if judge_max_new_tokens < 1:
            raise ValueError(f"judge_max_new_tokens must be at least 1, got {judge_max_new_tokens}")
        unknown = sorted(set(skip or {}) - set(METRIC_NAMES))
        if unknown:
            raise ValueError(f"unknown ragas metrics {unknown}; known: {list(METRIC_NAMES)}")
        self.skip = dict(skip or {})
        self.no_judge_reason = no_judge_reason
        self.embedder = embedder
        self.judge = judge
        self.judge_max_new_tokens = judge_max_new_tokens
        self._metrics: dict[str, Any] | None = None  # built on first score(): importing ragas takes ~3 s
        self._judge_llm: Any = None

    def __repr__(self) -> str:
        embedder, judge = getattr(self.embedder, "name", None), getattr(self.judge, "name", None)
        tokens = self.judge_max_new_tokens
        return f"RagasEvaluator(embedder={embedder!r}, judge={judge!r}, judge_max_new_tokens={tokens})"

    def metric_names(self) -> list[str]:
        """The keys of every dict `score` returns, in order (the same whatever is configured)."""
        return list(METRIC_NAMES)

    def score(
        self, samples: Sequence[RagasSample], *, show_progress: bool = False
    ) -> list[dict[str, MetricValue]]:
        """Scores each sample with every metric.

        Args:
            samples: The answered questions.
            show_progress: Show a progress bar over the samples.

        Returns:
            One dict per sample, keyed by `metric_names`.
        """
        for i, sample in enumerate(samples):
            if not isinstance(sample, RagasSample):
                raise TypeError(f"samples[{i}] must be a RagasSample, got {type(sample)!r}")
        metrics = self._ragas_metrics()
        return _run_sync(self._score_all(list(samples), metrics, show_progress))

    async def _score_all(
        self, samples: list[RagasSample], metrics: dict[str, Any], show_progress: bool
    ) -> list[dict[str, MetricValue]]:
        from ragas.dataset_schema import SingleTurnSample

        rows = []
        for sample in tqdm(samples, desc="ragas", unit="sample", disable=not show_progress):
            ragas_sample = SingleTurnSample(
                user_input=sample.question,
                response=sample.answer,
                retrieved_contexts=list(sample.contexts),
                reference=sample.reference,
                reference_contexts=list(sample.reference_contexts) if sample.reference_contexts else None,
            )
            row = {}
            for spec in _SPECS:
                missing = self._missing(spec, sample)
                if missing:
                    row[spec.name] = MetricValue(None, missing)
                else:
                    row[spec.name] = await self._one(spec, metrics[spec.name], ragas_sample)
            rows.append(row)
        return rows

    def _missing(self, spec: _Spec, sample: RagasSample) -> str | None:
        if spec.name in self.skip:
            return self.skip[spec.name]
        unmet = {
            "judge": (self.judge is None, self.no_judge_reason),
            "embedder": (self.embedder is None, NO_EMBEDDER),
            "reference": (not (sample.reference or "").strip(), NO_REFERENCE),
            # ragas takes max() over these lists, so an empty one crashes it rather than scoring
            "reference_contexts": (not sample.reference_contexts, NO_REFERENCE_CONTEXTS),
            "contexts": (not sample.contexts, NO_CONTEXTS),
            # an empty answer has no claims to check; asking the judge would only cost calls
            "answer": (not sample.answer.strip(), NO_ANSWER),
        }
        return next((unmet[need][1] for need in spec.needs if unmet[need][0]), None)

    async def _one(self, spec: _Spec, metric: Any, sample: Any) -> MetricValue:
        judged = "judge" in spec.needs
        if judged:
            self._judge_llm.last_reply = None  # so a reason never quotes another metric's reply
        try:
            raw = await metric.single_turn_ascore(sample)
        except Exception as exc:  # a judge's invalid JSON, a model error: a reason, never a raise or a 0
            reason = f"{type(exc).__name__}: {str(exc) or repr(exc)}"
            last = self._judge_llm.last_reply if judged else None
            if last is not None:
                reason += f" (last judge reply: {last[:80]!r})"
            return MetricValue(None, _truncate(reason))
        value = float(raw)
        if not math.isfinite(value):
            return MetricValue(None, "ragas returned NaN" + (f": {spec.nan_hint}" if spec.nan_hint else ""))
        return MetricValue(value, None)

    def _ragas_metrics(self) -> dict[str, Any]:
        """Builds the configured ragas metrics once; an unconfigured one is absent (reported missing)."""
        if self._metrics is not None:
            return self._metrics
        from ragas import _analytics

        _analytics.do_not_track.cache_clear()  # in case ragas was imported and asked before our env var
        from ragas.metrics._answer_relevance import ResponseRelevancy
        from ragas.metrics._answer_similarity import SemanticSimilarity
        from ragas.metrics._bleu_score import BleuScore
        from ragas.metrics._chrf_score import ChrfScore
        from ragas.metrics._context_precision import (
            LLMContextPrecisionWithReference,
            NonLLMContextPrecisionWithReference,
        )
        from ragas.metrics._context_recall import LLMContextRecall, NonLLMContextRecall
        from ragas.metrics._faithfulness import Faithfulness
        from ragas.metrics._rouge_score import RougeScore
        from ragas.metrics._string import ExactMatch, StringPresence

        metrics: list[Any] = [NonLLMContextRecall(), NonLLMContextPrecisionWithReference(), ExactMatch()]
        metrics += [StringPresence(), RougeScore(), BleuScore(), ChrfScore()]
        embeddings = as_ragas_embeddings(self.embedder) if self.embedder is not None else None
        if embeddings is not None:
            metrics.append(SemanticSimilarity(embeddings=embeddings))
        if self.judge is not None:
            self._judge_llm = llm = as_ragas_llm(self.judge, max_new_tokens=self.judge_max_new_tokens)
            metrics += [Faithfulness(llm=llm), LLMContextPrecisionWithReference(llm=llm)]
            metrics.append(LLMContextRecall(llm=llm))
            if embeddings is not None:
                metrics.append(ResponseRelevancy(llm=llm, embeddings=embeddings))
        run_config = _run_config()
        for metric in metrics:
            metric.init(run_config)
        self._metrics = {m.name: m for m in metrics}
        return self._metrics


def as_ragas_llm(generator: Generator, *, max_new_tokens: int = 512) -> Any:
    """Wraps a `Generator` as a ragas ``BaseRagasLLM`` (what ragas' legacy LLM metrics call).

    Args:
        generator: The judge; each ragas prompt goes to it as one user message.
        max_new_tokens: Most tokens per reply.

    Returns:
        A ``ragas.llms.base.BaseRagasLLM`` whose ``last_reply`` holds the judge's latest text.
    """
    return _judge_class()(generator, max_new_tokens)


def as_ragas_embeddings(embedder: Embedder) -> Any:
    """Wraps an `Embedder` as ragas' ``LlamaIndexEmbeddingsWrapper`` over `LlamaIndexEmbedding`."""
    from ragas.embeddings.base import LlamaIndexEmbeddingsWrapper

    from eval.vanilla import LlamaIndexEmbedding

    with warnings.catch_warnings():
        # Deprecated in favour of the "modern" embeddings, which the legacy metrics we use do not accept.
        warnings.simplefilter("ignore", DeprecationWarning)
        return LlamaIndexEmbeddingsWrapper(LlamaIndexEmbedding(embedder), run_config=_run_config())


def _run_config() -> Any:
    from ragas.run_config import RunConfig

    # ragas' default retries a failing call 10 times with waits up to 60 s; our backends fail for
    # reasons a retry does not fix (bad JSON is re-asked by ragas' own parser), so try once.
    return RunConfig(max_retries=1, max_wait=1)


@cache
def _judge_class() -> type:
    """The `BaseRagasLLM` subclass, defined on first use so importing this module doesn't import ragas."""
    from langchain_core.outputs import Generation, LLMResult
    from ragas.llms.base import BaseRagasLLM

    class GeneratorJudge(BaseRagasLLM):
        """A Tessera `Generator` answering ragas' prompts; sync and async share `generate_text`."""

        def __init__(self, generator: Generator, max_new_tokens: int) -> None:
            super().__init__(run_config=_run_config())
            self.generator = generator
            self.max_new_tokens = max_new_tokens
            self.last_reply: str | None = None

        def generate_text(
            self,
            prompt: Any,
            n: int = 1,
            temperature: float | None = 0.01,
            stop: list[str] | None = None,
            callbacks: Any = None,
        ) -> LLMResult:
            # ragas asks for 0.01 meaning "as deterministic as possible" (and 0.3 when it wants n
            # different replies); our backends treat 0 as greedy.
            temp = temperature if temperature is not None and temperature > 0.01 else 0.0
            messages = [Message("user", prompt.to_string())]
            texts = []
            for _ in range(n):  # our generators give one completion per call
                self.last_reply = self.generator.generate(
                    messages, max_new_tokens=self.max_new_tokens, temperature=temp, stop=stop or ()
                )
                texts.append(self.last_reply)
            return LLMResult(generations=[[Generation(text=t) for t in texts]])

        async def agenerate_text(
            self,
            prompt: Any,
            n: int = 1,
            temperature: float | None = 0.01,
            stop: list[str] | None = None,
            callbacks: Any = None,
        ) -> LLMResult:
            return self.generate_text(prompt, n=n, temperature=temperature, stop=stop, callbacks=callbacks)

        def is_finished(self, response: LLMResult) -> bool:
            # Generators report no finish reason; a reply cut at max_new_tokens fails JSON parsing instead.
            return True

        def __repr__(self) -> str:
            return f"GeneratorJudge(generator={getattr(self.generator, 'name', '?')!r})"

    return GeneratorJudge


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (a UI, an async test): run on a private loop in a worker thread
    # rather than patching the caller's loop with nest_asyncio as ragas' sync API does.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _truncate(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
