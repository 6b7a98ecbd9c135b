"""Each metric against values computed by hand."""

from __future__ import annotations

import math

import pytest

from eval.metrics import (
    abstention_scores,
    bootstrap_ci,
    exact_match,
    mrr_at_k,
    ndcg_at_k,
    normalize_answer,
    passage_recall_at_k,
    recall_at_k,
    strip_citations,
    token_f1,
)


def test_squad_normalisation_em_and_f1() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert exact_match("the Eiffel Tower.", "Eiffel Tower") == 1.0
    assert exact_match("Paris", "London") == 0.0
    # pred tokens {in, paris, france} vs gold {paris}: p=1/3, r=1 -> f1 = 0.5
    assert token_f1("in Paris, France", "Paris") == pytest.approx(0.5)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert strip_citations("Paris [1] and Lyon [2, 3]") == "Paris  and Lyon"


def test_retrieval_metrics_by_hand() -> None:
    ranked = ["d3", "d1", "d1", "d7", "d2"]  # distinct: d3 d1 d7 d2
    assert recall_at_k(ranked, ["d1", "d2"], 2) == 0.5
    assert recall_at_k(ranked, ["d1", "d2"], 4) == 1.0
    assert mrr_at_k(ranked, ["d1"], 5) == 0.5
    assert mrr_at_k(ranked, ["d9"], 5) == 0.0
    # relevant d1 at rank 2, d2 at rank 4; ideal ranks 1 and 2
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(ranked, ["d1", "d2"], 10) == pytest.approx(expected)
    with pytest.raises(ValueError):
        recall_at_k(ranked, [], 5)


def test_passage_recall() -> None:
    texts = ["Baikal is 1,642 metres deep.", "Paris is in France."]
    assert passage_recall_at_k(texts, ["1,642 metres", "capital of Peru"], 2) == 0.5
    assert passage_recall_at_k(texts, ["Paris is in France"], 1) == 0.0


def test_abstention_scores() -> None:
    abstained = [True, True, False, False]
    answerable = [False, True, False, True]
    # tp = 1 (q0); predicted 2; actual unanswerable 2
    assert abstention_scores(abstained, answerable) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    undefined = abstention_scores([False, False], [True, False])
    assert undefined["precision"] is None and undefined["f1"] is None and undefined["recall"] == 0.0


def test_bootstrap_ci_brackets_the_mean() -> None:
    values = [0.0, 1.0] * 50
    low, high = bootstrap_ci(values)
    assert low < 0.5 < high and high - low < 0.3
    assert bootstrap_ci([1.0, 1.0]) == (1.0, 1.0)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)


def test_contains_answer_is_rgb_accuracy() -> None:
    from eval.metrics import contains_answer, mentions_conflict

    assert contains_answer("It was played in Tampa, Florida [1].", [["Tampa, Florida", "Tampa"]])
    assert not contains_answer("Glendale, Arizona [2]", [["Tampa, Florida"]])
    assert contains_answer("Kansas City and Tampa", [["Tampa"], ["Kansas City"]])  # every part needed
    assert not contains_answer("Tampa", [["Tampa"], ["Kansas City"]])
    assert not contains_answer("Tampax", [["Tampa"]])  # whole words only
    assert not contains_answer("anything", [])
    assert mentions_conflict("Sources disagree: [1] says Tampa, [2] Glendale.")
    assert not mentions_conflict("Tampa [1]")
