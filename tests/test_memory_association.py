"""Association by Gaussian-mixture clustering (memory/association.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from memory.association import associate, links_for


def blobs(per_blob: int = 12, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian blobs, shuffled; returns (vectors, true blob of each)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 5
    truth = np.repeat(np.arange(3), per_blob)
    x = centres[truth] + rng.normal(size=(len(truth), dim)) * 0.3
    order = rng.permutation(len(truth))
    return x[order], truth[order]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_blobs_come_out_as_three_components(seed: int) -> None:
    x, truth = blobs(seed=seed)
    labels = associate(x, max_components=8, seed=seed)
    assert adjusted_rand_score(truth, labels) == 1.0
    assert labels[0] == 0 and set(labels.tolist()) == {0, 1, 2}  # numbered in order of first appearance


def test_links_pair_new_units_with_their_blob_only() -> None:
    x, truth = blobs()
    labels = associate(x, max_components=8)
    new = [len(x) - 2, len(x) - 1]
    pairs = links_for(labels, new)
    assert pairs and all(truth[a] == truth[b] for a, b in pairs)
    for i in new:  # every other member of its blob, and no one else
        partners = {b if a == i else a for a, b in pairs if i in (a, b)}
        assert partners == {int(j) for j in np.flatnonzero(truth == truth[i])} - {i}
    assert pairs == sorted(set(pairs)) and all(a < b for a, b in pairs)


def test_links_limit_keeps_the_most_recent_partners() -> None:
    labels = np.zeros(6, dtype=int)
    assert links_for(labels, [5], limit=2) == [(3, 5), (4, 5)]
    assert links_for(np.array([0, 1, 0]), [1]) == []  # alone in its component


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_too_few_vectors_are_one_component(n: int) -> None:
    labels = associate(np.random.default_rng(0).normal(size=(n, 8)), max_components=8)
    assert labels.tolist() == [0] * n


def test_invalid_arguments_are_errors() -> None:
    with pytest.raises(ValueError, match="max_components"):
        associate(np.zeros((4, 3)), max_components=0)
    with pytest.raises(ValueError, match=r"\(n, dim\)"):
        associate(np.zeros(4), max_components=2)
