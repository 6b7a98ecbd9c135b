"""What the store takes and gives back: points written, hits found, points scanned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


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
