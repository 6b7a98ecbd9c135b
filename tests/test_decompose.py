"""Multi-part questions: the rules that split them, and how the parts' rankings are merged."""

from __future__ import annotations

import pytest

from retrievers.decompose import MAX_PARTS, decompose, interleave


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "Are Christopher Nolan and Sathish Kalathil both film directors?",
            ["Are Christopher Nolan both film directors?", "Are Sathish Kalathil both film directors?"],
        ),
        (  # a leading "the" and a comma before the pair
            "Which plant is larger, the Pterocarya or the Cotula?",
            ["Which plant is larger, the Pterocarya?", "Which plant is larger, the Cotula?"],
        ),
        (  # joiners inside a name; the capitalised word before the comma is not a third name
            "Which singer is American, Mark King or Géza von Cziffra?",
            ["Which singer is American, Mark King?", "Which singer is American, Géza von Cziffra?"],
        ),
        ("How does Apple compared with Microsoft report revenue?", ["How does Apple report revenue?", "How does Microsoft report revenue?"]),
        ("What did The Verge and TechCrunch say about the launch?", ["What did The Verge say about the launch?", "What did TechCrunch say about the launch?"]),
        ("What is the capital of France? Who founded the Louvre?", ["What is the capital of France?", "Who founded the Louvre?"]),
    ],
)
def test_multi_part_questions_are_split(question: str, parts: list[str]) -> None:
    assert decompose(question) == parts


@pytest.mark.parametrize(
    "question",
    [
        "Who directed the film that was shot in or around Leland, North Carolina in 1986",  # lower-case "or"
        "When was the Eiffel Tower completed?",
        "Is salt and pepper a seasoning?",  # common nouns
        "Who is the spouse of the performer of Hello Love?",
        "",
    ],
)
def test_single_part_questions_are_left_alone(question: str) -> None:
    assert decompose(question) == []


def test_at_most_max_parts() -> None:
    question = " ".join(f"What is item {n} called?" for n in range(MAX_PARTS + 3))
    assert len(decompose(question)) == MAX_PARTS


def test_interleave_gives_each_part_places_then_the_question_continues() -> None:
    whole, first, second = ["a", "b", "c", "d"], ["x", "a", "y"], ["z", "w"]
    merged = interleave([whole, first, second], key=str, limit=20, rounds=2)
    assert merged == ["a", "x", "z", "b", "w", "c", "d", "y"]  # "a" once; rank 2 round-robin; then the rest
    assert interleave([whole, first, second], key=str, limit=3) == ["a", "x", "z"]
    assert interleave([whole], key=str, limit=10) == whole
