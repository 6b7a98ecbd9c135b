"""The gold-position study's sampling, placement, orderings and paired tests (eval/positions.py), with fakes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.models.base import Message
from assistant.models.fake import FakeGenerator
from eval.positions import answer, paired_tests, placed, sample_items, table

DISTRACTORS = 4


def write_squad(path: Path) -> Path:
    """A SQuAD v2.0-shaped file: two articles with enough paragraphs, one too small, unanswerables mixed in."""

    def article(title: str, paragraphs: int) -> dict:
        return {
            "title": title,
            "paragraphs": [
                {
                    "context": f"{title} paragraph {i} says the value is {i}.",
                    "qas": [
                        {
                            "id": f"{title}-{i}",
                            "question": f"What value does {title} give in {i}?",
                            "answers": [{"text": str(i)}],
                        },
                        {"id": f"{title}-{i}-x", "question": "Unanswerable?", "answers": [], "is_impossible": True},
                    ],
                }
                for i in range(paragraphs)
            ],
        }

    data = {"data": [article("Alpha", 6), article("Beta", 7), article("Tiny", 3)]}
    path.write_text(json.dumps(data))
    return path


class GoldLovingGenerator(FakeGenerator):
    """A fake that reports most attention on the source holding 'value is N' of the asked N, and answers N."""

    def __init__(self, wanted: str) -> None:
        super().__init__(default=f"{wanted} [1]")
        self.wanted = wanted

    def source_attention(self, messages: Sequence[Message], sources: Sequence[str]) -> list[float]:
        return [1.0 if f"value is {self.wanted}." in block else 0.1 for block in sources]


def test_sample_items_takes_answerable_questions_from_articles_large_enough(tmp_path: Path) -> None:
    items = sample_items(write_squad(tmp_path / "squad.json"), 5, seed=0, distractors=DISTRACTORS)

    assert len(items) == 5
    for item in items:
        assert item["title"] in ("Alpha", "Beta")
        assert item["answers"] and not item["id"].endswith("-x")
        assert len(item["distractors"]) == DISTRACTORS
        assert item["gold"] not in item["distractors"]
    again = sample_items(tmp_path / "squad.json", 5, seed=0, distractors=DISTRACTORS)
    assert [i["id"] for i in again] == [i["id"] for i in items]


@pytest.mark.parametrize(("position", "index"), [("first", 0), ("middle", DISTRACTORS // 2), ("last", DISTRACTORS)])
def test_placed_puts_the_gold_paragraph_where_asked(tmp_path: Path, position: str, index: int) -> None:
    item = sample_items(write_squad(tmp_path / "squad.json"), 1, seed=1, distractors=DISTRACTORS)[0]

    hits = placed(item, position)

    assert len(hits) == DISTRACTORS + 1
    assert [h.unit_id for h in hits].index("gold") == index
    assert hits[index].text == item["gold"]


def test_orderings_move_the_gold_paragraph_and_answers_are_scored(tmp_path: Path) -> None:
    item = sample_items(write_squad(tmp_path / "squad.json"), 1, seed=2, distractors=DISTRACTORS)[0]
    generator = GoldLovingGenerator(item["answers"][0])
    hits = placed(item, "first")

    rows = {order: answer(item, hits, order, generator, Settings()) for order in ("retrieval", "reversed", "attention")}

    assert rows["retrieval"]["gold_at"] == 0
    assert rows["reversed"]["gold_at"] == DISTRACTORS
    assert rows["attention"]["gold_at"] == DISTRACTORS  # most attended goes last
    assert rows["attention"]["order_seconds"] >= 0
    assert all(row["em"] == 1.0 and row["f1"] == 1.0 for row in rows.values())  # the citation is stripped


def test_a_wrong_answer_scores_zero(tmp_path: Path) -> None:
    item = sample_items(write_squad(tmp_path / "squad.json"), 1, seed=3, distractors=DISTRACTORS)[0]
    row = answer(item, placed(item, "middle"), "retrieval", FakeGenerator(default="nowhere [1]"), Settings())

    assert row["em"] == 0.0 and row["f1"] == 0.0


def rows_for(em: dict[str, list[float]]) -> list[dict]:
    """Study rows for len(list) questions at every placement, with the EM (and F1) given per ordering."""
    return [
        {"id": f"q{i}", "position": position, "order": order, "em": value, "f1": value}
        | {"gold_at": 0, "order_seconds": 0.0, "generate_seconds": 1.0}
        for order, values in em.items()
        for i, value in enumerate(values)
        for position in ("first", "middle", "last")
    ]


def test_paired_tests_find_a_consistent_gain_and_no_gain_between_equals() -> None:
    rows = rows_for({"attention": [1.0] * 12, "retrieval": [0.0] * 12, "reversed": [1.0] * 12})

    lines = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in paired_tests(rows).splitlines()[2:]}

    pooled_vs_retrieval = [cell.strip() for cell in lines[("pooled", "retrieval")].split("|")]
    assert pooled_vs_retrieval[3:8] == ["36", "+100.0", "0.000", "+100.0", "0.000"]
    pooled_vs_reversed = [cell.strip() for cell in lines[("pooled", "reversed")].split("|")]
    assert pooled_vs_reversed[4:6] == ["+0.0", "1.000"]
    assert ("first", "retrieval") in lines and ("last", "reversed") in lines


def test_table_reports_each_cell() -> None:
    rows = rows_for({"attention": [1.0, 0.0], "retrieval": [0.0, 0.0], "reversed": [1.0, 1.0]})

    text = table(rows)

    assert "| first | attention | 2 | 50.0 | 50.0 |" in text
    assert "| last | reversed | 2 | 100.0 | 100.0 |" in text
