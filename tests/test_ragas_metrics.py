"""Tests for eval/ragas_metrics.py: ragas' own metrics over fake models, values checked by hand."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.models.base import Message, ModelError
from assistant.models.fake import FakeEmbedder, FakeGenerator
from eval.ragas_metrics import (
    NO_ANSWER,
    NO_CONTEXTS,
    NO_EMBEDDER,
    NO_JUDGE,
    NO_REFERENCE,
    NO_REFERENCE_CONTEXTS,
    MetricValue,
    RagasEvaluator,
    RagasSample,
    as_ragas_llm,
)

JUDGED = ["faithfulness", "answer_relevancy", "llm_context_precision_with_reference", "context_recall"]
QUESTION = "Where is the Eiffel Tower and how tall is it?"
CONTEXTS = [
    "The Eiffel Tower is in Paris, France.",
    "The Eiffel Tower is 330 metres tall.",
    "Berlin is the capital of Germany.",
]
SAMPLE = RagasSample(
    question=QUESTION,
    answer="The Eiffel Tower is in Paris. It is 330 metres tall. It was built in 1850.",
    contexts=CONTEXTS,
    reference="The Eiffel Tower is in Paris. It is 330 metres tall.",
    reference_contexts=["The Eiffel Tower is in Paris, France.", "The Eiffel Tower stands 330 metres tall."],
)


STATEMENTS = [
    "The Eiffel Tower is in Paris.",
    "The Eiffel Tower is 330 metres tall.",
    "It was built in 1850.",
]
VERDICTS = list(zip(STATEMENTS, (1, 1, 0)))  # the 1850 claim is in no context


def judge_replies(questions: Sequence[str] = (QUESTION,) * 3) -> list[str]:
    """The judge's replies for `SAMPLE`, in the order the evaluator asks (the order of `_SPECS`)."""
    return [
        # faithfulness: StatementGeneratorOutput, then NLIStatementOutput
        json.dumps({"statements": STATEMENTS}),
        json.dumps({"statements": [{"statement": s, "reason": "r", "verdict": v} for s, v in VERDICTS]}),
        # answer_relevancy: ResponseRelevanceOutput, once per `strictness` (3)
        *(json.dumps({"question": q, "noncommittal": 0}) for q in questions),
        # llm_context_precision_with_reference: Verification, once per retrieved context
        json.dumps({"reason": "useful", "verdict": 1}),
        json.dumps({"reason": "not useful", "verdict": 0}),
        # ```json fences are fine: ragas extracts the JSON object
        '```json\n{"reason": "useful", "verdict": 1}\n```',
        # context_recall: ContextRecallClassifications over the reference's sentences
        json.dumps(
            {
                "classifications": [
                    {"statement": "The Eiffel Tower is in Paris.", "reason": "context 1", "attributed": 1},
                    {"statement": "It is 330 metres tall.", "reason": "not found", "attributed": 0},
                ]
            }
        ),
    ]


def test_default_init_and_names() -> None:
    ev = RagasEvaluator()
    assert ev.judge is None and ev.embedder is None and ev.judge_max_new_tokens == 512
    assert ev.metric_names()[:3] == [
        "non_llm_context_recall",
        "non_llm_context_precision_with_reference",
        "exact_match",
    ]
    assert set(JUDGED) <= set(ev.metric_names())
    assert "RagasEvaluator(" in repr(ev)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"embedder": "minilm"}, TypeError),
        ({"judge": object()}, TypeError),
        ({"judge_max_new_tokens": 0}, ValueError),
        ({"skip": {"faithfulnes": "typo"}}, ValueError),
    ],
)
def test_invalid_init(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        RagasEvaluator(**kwargs)


def test_score_rejects_other_samples() -> None:
    with pytest.raises(TypeError, match="RagasSample"):
        RagasEvaluator().score([{"question": "q"}])  # type: ignore[list-item]


def test_import_is_cheap() -> None:
    code = "import sys, eval.ragas_metrics; print('ragas' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


def test_non_llm_metrics_by_hand(fake_embedder: FakeEmbedder) -> None:
    same = RagasSample("Capital of France?", "Paris", ["Paris is the capital of France."], "Paris", None)
    partial = RagasSample(
        question="Capital of France?",
        answer="It is Paris, of course",
        contexts=["Paris is the capital of France.", "Bananas are yellow fruit.", "Rome is in Italy."],
        reference="Paris",
        # one reference context retrieved verbatim, one nowhere near any retrieved context
        reference_contexts=["Paris is the capital of France.", "The Seine flows through the city centre."],
    )
    first, second = RagasEvaluator(fake_embedder).score([same, partial])
    assert first["exact_match"] == MetricValue(1.0, None)
    assert first["string_present"].value == 1.0
    assert first["rouge_score"].value == pytest.approx(1.0)
    assert first["chrf_score"].value == pytest.approx(1.0)
    assert first["semantic_similarity"].value == pytest.approx(1.0)
    assert second["exact_match"].value == 0.0
    assert second["string_present"].value == 1.0  # "Paris" occurs in the answer
    assert 0.0 < second["rouge_score"].value < 1.0
    # NonLLMContextRecall: 1 of 2 reference contexts has a retrieved context with similarity > 0.5
    assert second["non_llm_context_recall"] == MetricValue(0.5, None)
    # NonLLMContextPrecisionWithReference: relevance [1, 0, 0] -> average precision 1 (ragas adds 1e-10)
    assert second["non_llm_context_precision_with_reference"].value == pytest.approx(1.0)
    cos = float(np.dot(*fake_embedder.embed(["Paris", "It is Paris, of course"])))
    assert second["semantic_similarity"].value == pytest.approx(cos)


def test_skipped_metrics_are_missing_with_their_reason(fake_embedder: FakeEmbedder) -> None:
    sample = RagasSample("Capital of France?", "Paris", ["Paris is the capital of France."], "Paris", None)
    row = RagasEvaluator(fake_embedder, skip={"exact_match": "left out on purpose"}).score([sample])[0]
    assert row["exact_match"] == MetricValue(None, "left out on purpose")
    assert row["string_present"].value == 1.0  # the others are computed as before


def test_missing_reasons_without_judge_or_references() -> None:
    unanswerable = RagasSample("Who won in 2040?", "", ["Nothing relevant."], None, None)
    nothing_found = RagasSample("q?", "a", [], "a", ["evidence"])
    a, b = RagasEvaluator().score([unanswerable, nothing_found])
    assert list(a) == list(b) == RagasEvaluator().metric_names()
    for name in JUDGED:
        assert a[name] == MetricValue(None, NO_JUDGE)  # the judge reason comes first
    for name in ("exact_match", "string_present", "rouge_score", "bleu_score", "chrf_score"):
        assert a[name] == MetricValue(None, NO_REFERENCE)
    assert a["semantic_similarity"] == MetricValue(None, NO_EMBEDDER)
    assert a["non_llm_context_recall"] == MetricValue(None, NO_REFERENCE_CONTEXTS)
    assert a["non_llm_context_precision_with_reference"] == MetricValue(None, NO_REFERENCE_CONTEXTS)
    assert b["non_llm_context_recall"] == MetricValue(None, NO_CONTEXTS)
    assert b["exact_match"].value == 1.0


def test_judged_metrics_by_hand(fake_embedder: FakeEmbedder) -> None:
    other = "Where is the Louvre?"
    judge = FakeGenerator(judge_replies(questions=(QUESTION, QUESTION, other)))
    row = RagasEvaluator(fake_embedder, judge, judge_max_new_tokens=300).score([SAMPLE])[0]
    assert not judge.replies  # every queued reply was used: the prompts came in the expected order
    assert row["faithfulness"] == MetricValue(pytest.approx(2 / 3), None)
    q, o = fake_embedder.embed([QUESTION, other])
    assert row["answer_relevancy"].value == pytest.approx((1 + 1 + float(np.dot(q, o))) / 3)
    # verdicts [1, 0, 1] -> (1/1 + 2/3) / 2
    assert row["llm_context_precision_with_reference"].value == pytest.approx(5 / 6)
    assert row["context_recall"] == MetricValue(0.5, None)
    first_prompt = judge.calls[0]
    assert [m.role for m in first_prompt] == ["user"]
    assert "Break down each sentence" in first_prompt[0].content
    assert "built in 1850" in first_prompt[0].content


def test_noncommittal_answer_and_nan_become_values_or_reasons(fake_embedder: FakeEmbedder) -> None:
    judge = FakeGenerator(
        [
            json.dumps({"statements": []}),  # no statements: ragas returns NaN, we report why
            *[json.dumps({"question": QUESTION, "noncommittal": 1})] * 3,
        ],
        default="not JSON",
    )
    row = RagasEvaluator(fake_embedder, judge).score([SAMPLE])[0]
    assert row["faithfulness"].value is None
    assert "NaN" in row["faithfulness"].reason and "no statements" in row["faithfulness"].reason
    assert row["answer_relevancy"] == MetricValue(0.0, None)  # a real 0: every reply noncommittal


def test_garbage_judge_gives_reasons_not_zeros(fake_embedder: FakeEmbedder) -> None:
    judge = FakeGenerator(default="Sure! The answer looks faithful to me.")
    row = RagasEvaluator(fake_embedder, judge).score([SAMPLE])[0]
    for name in JUDGED:
        assert row[name].value is None, name
        assert "RagasOutputParserException" in row[name].reason
        assert "looks faithful" in row[name].reason  # the judge's reply, to see what went wrong
        assert len(row[name].reason) <= 300
    assert row["exact_match"].value == 0.0  # non-LLM metrics are unaffected


class BrokenGenerator(FakeGenerator):
    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        self.calls.append(list(messages))
        raise ModelError("endpoint http://judge:8000 unreachable")


def test_failing_judge_is_not_retried(fake_embedder: FakeEmbedder) -> None:
    judge = BrokenGenerator()
    row = RagasEvaluator(fake_embedder, judge).score([SAMPLE])[0]
    for name in JUDGED:
        assert row[name].value is None
        assert row[name].reason.startswith("ModelError: endpoint http://judge:8000 unreachable")
    assert len(judge.calls) == len(JUDGED)  # one try per metric, not ragas' default 10 with back-off


def test_empty_answer_is_not_judged(fake_embedder: FakeEmbedder) -> None:
    abstained = RagasSample(QUESTION, "", CONTEXTS[:1], "Paris", None)
    judge = FakeGenerator(
        [
            json.dumps({"reason": "useful", "verdict": 1}),
            json.dumps({"classifications": [{"statement": "Paris", "reason": "r", "attributed": 1}]}),
        ]
    )
    row = RagasEvaluator(fake_embedder, judge).score([abstained])[0]
    assert row["faithfulness"] == row["answer_relevancy"] == MetricValue(None, NO_ANSWER)
    assert row["llm_context_precision_with_reference"].value == pytest.approx(1.0)
    assert row["context_recall"] == MetricValue(1.0, None)
    assert len(judge.calls) == 2 and row["exact_match"] == MetricValue(0.0, None)


def test_judge_without_embedder() -> None:
    judge = FakeGenerator(judge_replies())
    row = RagasEvaluator(judge=judge).score([SAMPLE])[0]
    assert row["answer_relevancy"] == MetricValue(None, NO_EMBEDDER)
    assert row["semantic_similarity"] == MetricValue(None, NO_EMBEDDER)
    assert row["faithfulness"].value == pytest.approx(2 / 3)


def test_judge_is_a_ragas_llm() -> None:
    from ragas.llms.base import BaseRagasLLM

    llm = as_ragas_llm(FakeGenerator(["{}"]), max_new_tokens=7)
    assert isinstance(llm, BaseRagasLLM)
    assert llm.is_finished(None) and "fake" in repr(llm)


def test_no_network_and_no_openai_client(
    fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to use the network or build an OpenAI client")

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(openai.OpenAI, "__init__", refuse)
    monkeypatch.setattr(openai.AsyncOpenAI, "__init__", refuse)
    judge = FakeGenerator(judge_replies())
    row = RagasEvaluator(fake_embedder, judge).score([SAMPLE])[0]
    assert all(v.value is not None for v in row.values()), {k: v.reason for k, v in row.items()}
    from ragas._analytics import do_not_track

    assert do_not_track()  # ragas' usage analytics stay off


async def test_score_inside_a_running_event_loop(fake_embedder: FakeEmbedder) -> None:
    row = RagasEvaluator(fake_embedder, FakeGenerator(judge_replies())).score([SAMPLE], show_progress=True)[0]
    assert row["faithfulness"].value == pytest.approx(2 / 3)
