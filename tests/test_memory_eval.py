"""eval.memory_eval helpers: cutting LoCoMo to its first conversations for the slow settings."""

from __future__ import annotations

from eval.datasets import CorpusRecord, Dataset, QuestionRecord
from eval.memory_eval import first_conversations, summary_table


def test_first_conversations_keeps_their_turns_and_questions_only() -> None:
    corpus = [CorpusRecord(f"{c}:{i}", c, f"line {i}", {"conversation_id": c}) for c in ("b", "a", "c") for i in range(2)]
    questions = [QuestionRecord(f"q{c}", "?", ("x",), (f"{c}:0",), c, {}) for c in ("a", "b", "c")]
    dataset = Dataset("locomo", corpus, questions)
    cut = first_conversations(dataset, 2)
    assert [r.id for r in cut.corpus] == ["b:0", "b:1", "a:0", "a:1"]  # corpus order decides which come first
    assert [q.id for q in cut.questions] == ["qa", "qb"]
    assert first_conversations(dataset, None) is dataset


def test_summary_table_reports_the_chosen_configurations_only() -> None:
    rows = [
        {"id": "q1", "config": "fact", "category": 1, "chosen": ["fact"], "answerable": True, "recall": 0.5, "f1": 0.25, "em": 0.0, "abstained": False},
        {"id": "q1", "config": "turn", "category": 1, "chosen": ["turn"], "answerable": True, "recall": 1.0},
    ]
    table = summary_table(rows, 4, ("fact",)).splitlines()
    assert len(table) == 3 and table[2].startswith("| fact | 0.500 (1) | 0.250 | 0.000 | 1 |")
