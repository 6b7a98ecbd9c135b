"""What the store takes and gives back: points written, legs queried (with their filters), hits found,
points scanned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from retrievers.sparse import SparseVec


@dataclass(frozen=True)
class StorePoint:
    """One retrievable unit as written to the store.

    Attributes:
        id: The unit id (``"<doc hash>:<n>"``); the Qdrant point id is its uuid5 (`point_id`).
        dense: float32 ``(dim,)`` embedding, unit length.
        text: The text the BM25 vector is computed from.
        payload: JSON-able metadata; always holds ``"doc_id"`` and ``"unit_id"``.
    """

    id: str
    dense: np.ndarray
    text: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoreHit:
    """One search result.

    Attributes:
        unit_id: The unit id from the payload.
        payload: The stored payload.
        score: RRF score (hybrid), cosine (dense) or BM25 score (sparse).
        dense_score: Cosine between the query vector and this point's vector in every mode; None without one.
    """

    unit_id: str
    payload: dict[str, Any]
    score: float
    dense_score: float | None


@dataclass(frozen=True)
class PointInfo:
    """What `Store.scan` reports of one stored point (no vectors).

    Attributes:
        unit_id: The payload's ``unit_id`` ("" if it has none).
        doc_id: The payload's ``doc_id`` ("" if it has none).
        state: ``ready`` (searchable) or ``pending`` (written, not yet published); "" if unset.
    """

    unit_id: str
    doc_id: str
    state: str


@dataclass(frozen=True)
class DateRange:
    """A time range on a datetime payload field: ``start <= value < end``, RFC 3339 UTC strings."""

    start: str
    end: str


@dataclass(frozen=True)
class Leg:
    """One ranked list a query contributes to fusion.

    Attributes:
        name: What the leg is, for traces (``"q0.dense"``, ``"q0.bm25"``, ``"hyde.dense"``...).
        using: ``dense`` (a cosine search on the dense vector) or ``sparse`` (BM25 on the sparse vector).
        vector: The float32 embedding (dense) or the BM25 query vector (sparse).
        weight: The leg's weight in reciprocal rank fusion.
        where: Only points whose payload matches these too (a keyword value, a tuple of values any of which
            may match, or a `DateRange` on a datetime field): a leg that searches one source or period, so its points gain a place beside the others.
    """

    name: str
    using: Literal["dense", "sparse"]
    vector: np.ndarray | SparseVec
    weight: float = 1.0
    where: tuple[tuple[str, str | tuple[str, ...] | DateRange], ...] = ()
