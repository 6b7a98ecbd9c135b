"""eval.memory_eval helpers: cutting LoCoMo to its first conversations for the slow settings."""

from __future__ import annotations

from eval.datasets import CorpusRecord, Dataset, QuestionRecord
from eval.memory_eval import first_conversations


def test_first_conversations_keeps_their_turns_and_questions_only() -> None:
    corpus = [CorpusRecord(f"{c}:{i}", c, f"line {i}", {"conversation_id": c}) for c in ("b", "a", "c") for i in range(2)]
    questions = [QuestionRecord(f"q{c}", "?", ("x",), (f"{c}:0",), c, {}) for c in ("a", "b", "c")]
    dataset = Dataset("locomo", corpus, questions)
    cut = first_conversations(dataset, 2)
    assert [r.id for r in cut.corpus] == ["b:0", "b:1", "a:0", "a:1"]  # corpus order decides which come first
    assert [q.id for q in cut.questions] == ["qa", "qb"]
    assert first_conversations(dataset, None) is dataset
