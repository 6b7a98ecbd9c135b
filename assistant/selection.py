"""How many retrieved passages the generator sees: fixed, or adapted to the score distribution.

Adaptive-k (after Taguchi et al., "Efficient Context Selection for Long-Context QA: No Tuning, No
Iteration, Just Adaptive-k"): sort the candidates' similarity to the question, find the largest drop
between neighbours, and keep everything above it. A question with one clearly relevant passage gets one
(less for a small model to be distracted by); a question whose evidence is spread out gets more.
"""

from __future__ import annotations

from collections.abc import Sequence


def adaptive_k(scores: Sequence[float | None], *, min_k: int = 1, max_k: int | None = None) -> int:
    """The number of passages to keep: up to the largest gap in the sorted similarity scores.

    Args:
        scores: Similarity of each candidate to the question (cosine; None counts as the lowest).
        min_k: Never keep fewer.
        max_k: Never keep more (default: all candidates).

    Returns:
        k, with ``min(min_k, len(scores)) <= k <= max_k``.
    """
    top = min(len(scores), max_k or len(scores))
    if top <= min_k:
        return top
    present = [s for s in scores if s is not None]
    floor = min(present, default=0.0)
    ordered = sorted((s if s is not None else floor for s in scores), reverse=True)
    gaps = [ordered[i] - ordered[i + 1] for i in range(len(ordered) - 1)]
    if max(gaps) <= 0:
        return top
    cut = max(range(len(gaps)), key=lambda i: (gaps[i], -i)) + 1  # the first of equal largest gaps
    return min(top, max(min_k, cut))
