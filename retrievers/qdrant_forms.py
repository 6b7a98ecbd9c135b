"""How the store's legs, filters and vectors are written in each engine's own types (Qdrant Edge's
`qdrant_edge`, the server's `qdrant_client.models`), and read back."""

from __future__ import annotations

from typing import Any

import numpy as np
import qdrant_edge as qe

from retrievers.points import DateRange, Leg
from retrievers.sparse import SparseVec

DENSE, SPARSE = "dense", "bm25"  # the named vectors of every collection


def edge_condition(key: str, value: str | tuple[str, ...] | DateRange) -> Any:
    """A payload condition: a keyword value, any of several values, or a datetime range."""
    if isinstance(value, DateRange):
        return qe.FieldCondition(key=key, range=qe.RangeDateTime(gte=value.start, lt=value.end))
    if isinstance(value, tuple):
        return qe.FieldCondition(key=key, match=qe.MatchAny(list(value)))
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def client_condition(m: Any, key: str, value: str | tuple[str, ...] | DateRange) -> Any:
    if isinstance(value, DateRange):
        return m.FieldCondition(key=key, range=m.DatetimeRange(gte=value.start, lt=value.end))
    if isinstance(value, tuple):
        return m.FieldCondition(key=key, match=m.MatchAny(any=list(value)))
    return m.FieldCondition(key=key, match=m.MatchValue(value=value))


def edge_nearest(leg: Leg) -> Any:
    if isinstance(leg.vector, SparseVec):
        return qe.Query.Nearest(qe.SparseVector(leg.vector.indices, leg.vector.values), using=SPARSE)
    return qe.Query.Nearest(floats(leg.vector), using=DENSE)


def client_vector(m: Any, leg: Leg) -> Any:
    if isinstance(leg.vector, SparseVec):
        return m.SparseVector(indices=leg.vector.indices, values=leg.vector.values)
    return floats(leg.vector)


def floats(vector: np.ndarray) -> list[float]:
    return np.asarray(vector, dtype=np.float32).astype(float).tolist()


def dense_of(vector: Any) -> list[float] | None:
    return vector.get(DENSE) if isinstance(vector, dict) else None


def cosine(query: np.ndarray | None, vector: list[float] | None) -> float | None:
    # From the returned vector, so every mode reports the same number for the same point.
    if query is None or vector is None:
        return None
    v = np.asarray(vector, dtype=np.float64)
    denom = float(np.linalg.norm(query) * np.linalg.norm(v))
    return float(query @ v / denom) if denom else 0.0
