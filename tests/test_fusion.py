"""Score-based fusion in Python (retrievers/fusion.py), checked by hand and against the engine's RRF."""

from __future__ import annotations

import math

import pytest

from retrievers.fusion import confidence, dbsf, fuse, rrf_confidence


def test_dbsf_normalises_each_leg_by_its_mean_and_three_deviations() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]  # mean 0.5, sd 0.3266: a → (0.9 - (0.5 - 0.98)) / 1.96
    bm25 = [("c", 12.0), ("a", 2.0)]  # mean 7, sd 5: c → (12 - (7 - 15)) / 30 = 0.6667, a → 0.3333
    fused = dict(dbsf([dense, bm25], [1.0, 1.0]))
    sd = math.sqrt(((0.4**2) * 2) / 3)
    assert fused["a"] == pytest.approx((0.9 - 0.5 + 3 * sd) / (6 * sd) + 1 / 3)
    assert fused["c"] == pytest.approx((0.1 - 0.5 + 3 * sd) / (6 * sd) + 2 / 3)
    assert fused["b"] == pytest.approx(0.5)
    assert [k for k, _ in dbsf([dense, bm25], [1.0, 1.0])] == ["a", "c", "b"]
    assert [k for k, _ in dbsf([dense, bm25], [1.0, 3.0])] == ["c", "a", "b"]  # the weight multiplies the leg


def test_dbsf_gives_a_flat_leg_the_middle_and_skips_an_empty_one() -> None:
    assert dbsf([[("a", 1.0), ("b", 1.0)], []], [1.0, 1.0]) == [("a", 0.5), ("b", 0.5)]


def test_confidence_is_the_top_scores_z_score() -> None:
    assert confidence([3.0, 1.0, 1.0, 1.0]) == pytest.approx((3.0 - 1.5) / math.sqrt(0.75))
    assert confidence([2.0, 2.0]) == 0.0 and confidence([5.0]) == 0.0 and confidence([]) == 0.0


def test_rrf_confidence_weights_the_surer_leg() -> None:
    peaked = [("a", 0.9)] + [(key, 0.1) for key in "bcdefgh"]  # top z-score √7 ≈ 2.65
    flat = [(key, 10.0 - 0.1 * n) for n, key in enumerate("hgfedcba")]  # evenly spaced: ≈ 1.53
    fused, used = rrf_confidence([peaked, flat], [1.0, 1.0], 10)
    assert used[0] > 1.0 > used[1] and sum(used) == pytest.approx(2.0)  # weights keep their mean
    assert fused[0][0] == "a"  # plain RRF ties a (ranks 1 and 8) with h (8 and 1)
    # Equal confidence: plain RRF as the engine scores it, 1 / (k + rank - 1).
    same, used = rrf_confidence([[("a", 2.0), ("b", 1.0)], [("b", 4.0), ("a", 2.0)]], [1.0, 1.0], 10)
    assert used == [1.0, 1.0] and same == [("a", 1 / 10 + 1 / 11), ("b", 1 / 11 + 1 / 10)]
    # No leg has any confidence: the static weights; a leg with none adds candidates only.
    assert rrf_confidence([[("a", 1.0), ("b", 1.0)]] * 2, [2.0, 1.0], 10)[1] == [2.0, 1.0]
    fused, used = rrf_confidence([[("a", 1.0), ("b", 0.0)], [("c", 1.0), ("d", 1.0)]], [1.0, 1.0], 10)
    assert used[1] == 0.0 and [k for k, _ in fused] == ["a", "b", "c", "d"]


def test_fuse_dispatches_and_refuses_unknown_fusions() -> None:
    legs = [[("a", 2.0), ("b", 1.0)], [("b", 3.0), ("a", 1.0)]]
    assert fuse(legs, [1.0, 1.0], "dbsf", 60) == (dbsf(legs, [1.0, 1.0]), [1.0, 1.0])
    assert fuse(legs, [1.0, 1.0], "rrf-confidence", 60) == rrf_confidence(legs, [1.0, 1.0], 60)
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(legs, [1.0, 1.0], "borda", 60)  # type: ignore[arg-type]


def test_rrf_here_scores_as_the_engine_does() -> None:
    # Qdrant's weighted RRF: weight / (k + rank - 1), rank from 1; worked by hand for k = 2.
    legs = [[("a", 9.0), ("b", 5.0)], [("b", 0.3), ("c", 0.1)]]
    fused, used = fuse(legs, [1.0, 2.0], "rrf", 2)
    assert used == [1.0, 2.0]
    assert fused == [("b", 1 / 3 + 2 / 2), ("c", 2 / 3), ("a", 1 / 2)]
