"""The entropy router (MemGAS): which granularity to recall from, per query.

Each granularity's candidates give a relevance distribution (softmax of their cosines). A granularity whose
distribution is peaked, with low entropy, has one clearly relevant unit; a flat one cannot tell its
candidates apart. The router recalls from the most decisive granularity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

GRANULARITIES = ("turn", "fact", "summary")  # also the tie order: the most verbatim first
MODES = ("entropy", "all", *GRANULARITIES)


@dataclass(frozen=True)
class RouteDecision:
    """The router's choice.

    Attributes:
        chosen: The granularities to recall from.
        entropies: The normalised entropy of each granularity that had candidates.
    """

    chosen: tuple[str, ...]
    entropies: dict[str, float]


def normalised_entropy(scores: Sequence[float], temperature: float) -> float:
    """Shannon entropy of ``softmax(scores / temperature)`` divided by ``log(n)``: 0 peaked, 1 uniform.

    Raises:
        ValueError: No scores, or a temperature that is not positive.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if len(scores) == 0:
        raise ValueError("normalised_entropy needs at least one score")
    if len(scores) == 1:
        return 0.0
    z = np.asarray(scores, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(len(p)))


def route(candidates: Mapping[str, Sequence[float]], temperature: float, mode: str) -> RouteDecision:
    """Chooses granularities from each one's candidate scores.

    Args:
        candidates: Granularity → cosine scores of its candidates; empty lists are skipped.
        temperature: Softmax temperature.
        mode: ``entropy`` (the lowest normalised entropy; ties in the order turn, fact, summary), ``all``
            (every granularity with candidates) or a granularity name (always that one).

    A granularity with a single candidate has entropy 0 by definition, which says nothing about how
    decisive it is (a user's first session has one summary); ``entropy`` mode picks such a one only when
    no granularity has two or more candidates.

    Raises:
        ValueError: An unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown memory router {mode!r}; expected one of {', '.join(MODES)}")
    present = sorted((g for g, s in candidates.items() if len(s)), key=_tie_order)
    entropies = {g: normalised_entropy(candidates[g], temperature) for g in present}
    if mode in GRANULARITIES:
        return RouteDecision((mode,), entropies)
    if mode == "all" or not present:
        return RouteDecision(tuple(present), entropies)
    informative = [g for g in present if len(candidates[g]) > 1] or present
    best = min(informative, key=lambda g: (entropies[g], _tie_order(g)))
    return RouteDecision((best,), entropies)


def _tie_order(granularity: str) -> tuple[int, str]:
    rank = GRANULARITIES.index(granularity) if granularity in GRANULARITIES else len(GRANULARITIES)
    return rank, granularity
