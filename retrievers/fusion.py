"""Fusing ranked lists in Python, from each leg's scores (the engine fuses by reciprocal rank only).

Equal-weight RRF of a weak leg and a strong one can land below the strong one (docs/EVALUATION.md §4:
BM25 alone beat hybrid on SQuAD, dense alone on MuSiQue). Two remedies, both scale-free so one setting
serves cosine and BM25 alike:

- ``dbsf`` — distribution-based score fusion (Qdrant's DBSF): each leg's scores are mapped to [0, 1] by
  their mean ± 3 standard deviations, then summed (times the leg's weight). A leg whose best hit stands far
  above its other candidates contributes a large margin; a flat leg contributes little.
- ``rrf-confidence`` — RRF with each leg weighted, per query, by how far its top score stands above its
  candidates (a z-score: (top − mean) / standard deviation), a post-retrieval query-performance predictor
  in the spirit of Shtok et al.'s NQC: a leg that is sure of its best hit counts more.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

Fusion = Literal["rrf", "dbsf", "rrf-confidence"]
Scored = Sequence[tuple[str, float]]  # one leg's (key, score), best first

_FLAT = 1e-9  # a leg whose scores are all equal: no spread to normalise by


def dbsf(legs: Sequence[Scored], weights: Sequence[float]) -> list[tuple[str, float]]:
    """Sum over legs of weight × the score normalised by the leg's mean ± 3 standard deviations, best first."""
    fused: dict[str, float] = {}
    for leg, weight in zip(legs, weights, strict=True):
        scores = [s for _, s in leg]
        if not scores:
            continue
        mean, spread = statistics.fmean(scores), statistics.pstdev(scores)
        low, high = mean - 3 * spread, mean + 3 * spread
        for key, score in leg:
            norm = 0.5 if high - low < _FLAT else min(1.0, max(0.0, (score - low) / (high - low)))
            fused[key] = fused.get(key, 0.0) + weight * norm
    return _ranked(fused)


def confidence(scores: Sequence[float]) -> float:
    """How far the top score stands above the rest, in standard deviations (0 for fewer than 2 or flat)."""
    if len(scores) < 2:
        return 0.0
    spread = statistics.pstdev(scores)
    return 0.0 if spread < _FLAT else (max(scores) - statistics.fmean(scores)) / spread


def rrf_confidence(legs: Sequence[Scored], weights: Sequence[float], k: int) -> tuple[list[tuple[str, float]], list[float]]:
    """RRF with each leg's weight multiplied by its `confidence`; returns the fused list and the weights used.

    When no leg is confident (all flat) the static weights apply unchanged.
    """
    sure = [confidence([s for _, s in leg]) for leg in legs]
    total = sum(sure)
    used = [w * (len(legs) * c / total if total > 0 else 1.0) for w, c in zip(weights, sure, strict=True)]
    fused: dict[str, float] = {}
    for leg, weight in zip(legs, used, strict=True):
        for rank, (key, _) in enumerate(leg, 1):
            # The weight multiplies the leg's reciprocal rank (Qdrant's form, 1 / (k + rank - 1), so equal
            # weights rank as the engine does); a leg with no confidence adds its candidates but no score.
            fused[key] = fused.get(key, 0.0) + weight / (k + rank - 1)
    return _ranked(fused), used


def rrf(legs: Sequence[Scored], weights: Sequence[float], k: int) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion in Qdrant's form (weight / (k + rank - 1)), for legs the engine cannot
    fuse in one query (legs with their own filters)."""
    fused: dict[str, float] = {}
    for leg, weight in zip(legs, weights, strict=True):
        for rank, (key, _) in enumerate(leg, 1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank - 1)
    return _ranked(fused)


def fuse(legs: Sequence[Scored], weights: Sequence[float], fusion: Fusion, k: int) -> tuple[list[tuple[str, float]], list[float]]:
    """The legs fused by ``dbsf``, ``rrf-confidence`` or ``rrf``, best first, and the weights each leg got."""
    if fusion == "dbsf":
        return dbsf(legs, weights), list(weights)
    if fusion == "rrf-confidence":
        return rrf_confidence(legs, weights, k)
    if fusion == "rrf":
        return rrf(legs, weights, k), list(weights)
    raise ValueError(f"unknown fusion {fusion!r}; expected dbsf, rrf or rrf-confidence")


def _ranked(fused: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))  # ties by key: reproducible
