"""The entropy router (memory/router.py)."""

from __future__ import annotations

import math

import pytest

from memory.router import normalised_entropy, route

T = 0.05  # the default router temperature


def test_normalised_entropy_bounds() -> None:
    assert normalised_entropy([0.3] * 5, T) == pytest.approx(1.0)
    assert normalised_entropy([0.9, 0.1, 0.1, 0.1], T) < 1e-5
    assert normalised_entropy([0.7], T) == 0.0
    mid = normalised_entropy([0.5, 0.45], T)
    p = 1 / (1 + math.exp(-1.0))  # softmax of (10, 9)
    assert mid == pytest.approx(-(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2))


def test_normalised_entropy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        normalised_entropy([], T)
    with pytest.raises(ValueError, match="temperature"):
        normalised_entropy([0.1, 0.2], 0.0)


def test_entropy_mode_picks_the_most_decisive_granularity() -> None:
    decision = route({"turn": [0.9, 0.2, 0.1], "summary": [0.5, 0.49, 0.48]}, T, "entropy")
    assert decision.chosen == ("turn",)
    assert decision.entropies["turn"] < 0.01 < 0.9 < decision.entropies["summary"]
    flipped = route({"turn": [0.5, 0.49, 0.48], "fact": [0.8, 0.3], "summary": [0.9, 0.1, 0.1]}, T, "entropy")
    assert flipped.chosen == ("summary",)


def test_ties_go_to_turn_then_fact_then_summary() -> None:
    same = [0.6, 0.5]
    assert route({"summary": same, "fact": same, "turn": same}, T, "entropy").chosen == ("turn",)
    assert route({"summary": same, "fact": same}, T, "entropy").chosen == ("fact",)


def test_empty_granularities_are_skipped() -> None:
    decision = route({"turn": [], "fact": [0.5, 0.49], "summary": []}, T, "entropy")
    assert decision.chosen == ("fact",) and set(decision.entropies) == {"fact"}
    assert route({"turn": [], "fact": []}, T, "entropy").chosen == ()
    assert route({"turn": [], "fact": [0.4], "summary": [0.3, 0.2]}, T, "all").chosen == ("fact", "summary")


def test_a_single_candidate_loses_to_an_informative_distribution() -> None:
    # One summary (a first session) has entropy 0 by definition but says nothing about decisiveness.
    decision = route({"turn": [0.6, 0.55, 0.5], "summary": [0.9]}, T, "entropy")
    assert decision.entropies["summary"] == 0.0 and decision.chosen == ("turn",)
    assert route({"fact": [0.4], "summary": [0.9]}, T, "entropy").chosen == ("fact",)


def test_forced_and_all_modes() -> None:
    scores = {"turn": [0.9, 0.1], "fact": [0.5, 0.5], "summary": [0.3, 0.29]}
    for g in ("turn", "fact", "summary"):
        assert route(scores, T, g).chosen == (g,)
    assert route(scores, T, "all").chosen == ("turn", "fact", "summary")
    assert route({"turn": []}, T, "summary").chosen == ("summary",)  # forced even when it found nothing


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown memory router 'best'.*entropy"):
        route({"turn": [0.1]}, T, "best")
