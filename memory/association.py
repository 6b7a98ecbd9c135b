"""Associating memories by Gaussian-mixture clustering (MemGAS's association step).

A user's unit embeddings are clustered with a diagonal Gaussian mixture; units in one component are
associated, so recalling one can bring its associates along (a fact with the session it came from, a turn
with another about the same topic). The number of components is chosen by BIC, since how many topics a
user talks about is not known in advance.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

_MAX_DIMS = 16  # a diagonal mixture in 384-d on a few hundred points overfits; PCA keeps the main directions
# Added to every variance. scikit-learn's 1e-6 lets components collapse onto pairs of points: 10 random unit
# vectors in 64-d came out as 5 "topics"; with 1e-3, one (three separated blobs still come out as three).
_VARIANCE_FLOOR = 1e-3


def associate(vectors: np.ndarray, max_components: int, seed: int = 0) -> np.ndarray:
    """Cluster labels of the vectors, numbered in order of first appearance.

    Args:
        vectors: ``(n, dim)`` embeddings.
        max_components: The most mixture components tried (the least BIC wins among 1..max).
        seed: Random state of PCA and the mixture, for reproducible labels.

    Returns:
        An int array of ``n`` labels; all zeros for fewer than two vectors.

    Raises:
        ValueError: ``max_components`` below 1 or ``vectors`` not two-dimensional.
    """
    if max_components < 1:
        raise ValueError(f"max_components must be at least 1, got {max_components}")
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"associate expects an (n, dim) array, got shape {x.shape}")
    n = len(x)
    most = min(max_components, n // 2) or 1
    if n < 2 or most == 1:
        return np.zeros(n, dtype=int)
    from sklearn.decomposition import PCA  # imported on first use: scikit-learn takes a second to import
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    best, best_bic = None, np.inf
    # One thread: on matrices this small, BLAS threads only contend (300 units: 0.1 s vs 0.6 s on 2 busy cores).
    # Near-duplicate memories make degenerate components; BIC rejects them, so their warnings are noise.
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if n > 2:
            x = PCA(n_components=min(_MAX_DIMS, n - 1, x.shape[1]), random_state=seed).fit_transform(x)
        for k in range(1, most + 1):
            mixture = GaussianMixture(k, covariance_type="diag", reg_covar=_VARIANCE_FLOOR, random_state=seed).fit(x)
            bic = mixture.bic(x)
            if bic < best_bic:
                best, best_bic = mixture, bic
    assert best is not None
    labels = best.predict(x)
    _, first = np.unique(labels, return_index=True)
    order = {int(labels[i]): rank for rank, i in enumerate(sorted(first))}
    return np.array([order[int(label)] for label in labels], dtype=int)


def links_for(labels: np.ndarray, new_indices: Sequence[int], limit: int | None = None) -> list[tuple[int, int]]:
    """Associations of new units: each paired with the other units of its component.

    Args:
        labels: Every unit's cluster label (`associate`), oldest unit first.
        new_indices: Positions of the units just added.
        limit: At most this many partners per new unit, the most recent ones; None for all.

    Returns:
        Sorted, distinct ``(i, j)`` pairs with ``i < j``.
    """
    labels = np.asarray(labels)
    pairs: set[tuple[int, int]] = set()
    for i in new_indices:
        mates = [int(j) for j in np.flatnonzero(labels == labels[i]) if j != i]
        for j in mates[-limit:] if limit else mates:
            pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)
