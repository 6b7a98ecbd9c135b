"""The vector store's interface and what its two backends share (DESIGN.md, "Storage and scale").

The backends: `retrievers.store.EdgeStore` (embedded Qdrant Edge, the default; `open_store` is there too) and
`retrievers.client_store.ClientStore` (a Qdrant server, through qdrant-client).

Both backends hold the same layout: a named dense vector ``"dense"`` (cosine) and a named sparse vector
``"bm25"`` with the IDF modifier, filled by the one `Bm25Encoder`. A query is a list of legs (dense or
BM25 vectors: the question's, a HyDE embedding's, an expanded query's...). A single leg is a plain search.
Several are fused: with ``rrf``, in one engine query of prefetches, where Qdrant scores a point
``sum(w_leg / (k + rank - 1))`` over the legs that found it, rank counted from 1; with ``dbsf`` (the default)
or ``rrf-confidence``, or when a leg has its own filter (`Leg.where`), each leg runs alone and
`retrievers.fusion` fuses their scored lists here, the same on both backends.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from assistant.types import StageClock
from retrievers.fusion import Fusion, fuse
from retrievers.points import Leg, PointInfo, StoreHit, StorePoint
from retrievers.qdrant_forms import DENSE, SPARSE, cosine, floats
from retrievers.sparse import Bm25Encoder, SparseVec

Mode = Literal["hybrid", "dense", "sparse"]
Row = tuple[str, list[float], SparseVec, dict[str, Any]]  # point id, dense, sparse, payload
Found = list[tuple[dict[str, Any], float, list[float] | None]]  # payload, score, dense vector
# Fixed forever: point ids derive from it, so changing it would orphan every stored point.
_ID_NAMESPACE = uuid.UUID("6f1c8a52-1d0e-5b7a-9c3e-7e55e22a0b61")
_BATCH = 256  # points per write: bounded memory, and well under a server's request size limit
OWNER_FILE = "owner.pid"  # written into the shard folder so a second process can say who holds the lock
# Payload fields with an index: deletes filter on doc_id, searches on state and unit (and memory on user, session).
# ``state`` is a keyword, not a bool: Qdrant Edge 0.9 matches MatchValue(True) against nothing.
_INDEXED = {
    "doc_id": "Keyword", "unit": "Keyword", "state": "Keyword", "user": "Keyword", "session": "Keyword",
    # What a document says about itself (ingestion.metadata), for filters on a source or a time range.
    "site": "Keyword", "author": "Keyword", "file_name": "Keyword", "date": "Datetime", "modified": "Datetime",
    "title": "Keyword",  # linked titles: a passage naming another document's title leads to it
    "embedder": "Keyword",  # which model's vectors a point holds (`Store.bind_embedder`)
}  # fmt: skip
LEGACY_EMBEDDER = "all-MiniLM-L6-v2"  # the default embedder before points recorded theirs
# Model names as points record them → the models.embedder value that selects them (for error messages).
_BUNDLED_EMBEDDERS = {"all-MiniLM-L6-v2": "minilm", "multilingual-e5-small-q4": "e5-small", "all-mpnet-base-v2": "mpnet"}
READY, PENDING = "ready", "pending"
log = logging.getLogger(__name__)
_SCANNED = ("unit_id", "doc_id", "state")  # the payload fields `Store.scan` reads


class StoreError(RuntimeError):
    """A store problem the user can act on; the message says what to do."""


def point_id(unit_id: str) -> str:
    """The deterministic Qdrant point id (a UUID string) of a unit id."""
    return str(uuid.uuid5(_ID_NAMESPACE, unit_id))


class Store(ABC):
    """A collection of units searchable by dense, sparse (BM25) or hybrid query. Use as a context manager."""

    def __init__(self) -> None:
        self._bm25 = Bm25Encoder()
        self.generation = 0  # counts this process's publishes and deletes: caches of what is stored key on it
        self._embedder: str | None = None
        self._embedder_checked = False

    def bind_embedder(self, name: str) -> None:
        """Declares the embedder whose vectors this process writes and searches with.

        Points record it (payload ``embedder``); the first search or write checks that the collection was
        built by the same model. Two models of one dimension (MiniLM and e5-small are both 384) would
        otherwise compare vectors from different spaces and rank at random, without any error.
        """
        if name != self._embedder:
            self._embedder, self._embedder_checked = name, False

    def _check_embedder(self) -> None:
        if self._embedder is None or self._embedder_checked:
            return
        # Points written before they recorded their embedder come from the only default of that time.
        built = self.values("embedder") or ([LEGACY_EMBEDDER] if self.count() else [])
        if built and self._embedder not in built:
            setting = _BUNDLED_EMBEDDERS.get(built[0])
            back = f"--set models.embedder={setting}" if setting else "models.embedder set to the one that built it"
            raise StoreError(
                f"this index was built with the embedder {built[0]}, but {self._embedder} was asked for: vectors of "
                f"two models cannot be compared. Use {back}, or ingest your documents again into a new home "
                "(--home DIR) or a new collection (store.collection) to use the new one"
            )
        self._embedder_checked = True

    @abstractmethod
    def ensure(self, dimension: int) -> None:
        """Creates the collection if missing.

        Raises:
            StoreError: It exists with another dense dimension, or (Edge) another process holds it.
        """

    def delete_doc(self, doc_id: str) -> None:
        """Deletes every point whose payload ``doc_id`` is this one."""
        self.delete_docs([doc_id])

    @abstractmethod
    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        """Deletes every point of these documents, in one operation."""

    @abstractmethod
    def count(self) -> int:
        """Number of points (0 before the collection exists)."""

    @abstractmethod
    def close(self) -> None:
        """Makes writes durable and releases the store; safe to call twice."""

    def optimize(self) -> None:
        """Builds indexes (HNSW) where the engine leaves that to the caller; a no-op elsewhere."""

    def scan(self, page: int = 1024) -> Iterator[PointInfo]:
        """Every point's unit id, document id and state, in pages of ``page`` points (no vectors).

        For consistency checks (``tessera doctor``), not for search: it reads the whole collection, in no
        particular order; nothing when the collection does not exist.
        """
        offset: Any = None
        while True:
            payloads, offset = self._page(offset, page)
            for pl in payloads:
                yield PointInfo(str(pl.get("unit_id", "")), str(pl.get("doc_id", "")), str(pl.get("state", "")))
            if offset is None:
                return

    def values(self, key: str, limit: int = 10_000) -> list[str]:
        """The distinct values of a keyword payload field among searchable points, most frequent first
        (Qdrant's facet count; the query analyser matches a question's source names against them). Empty, with
        a warning, where the engine cannot count them (a server collection without that payload index)."""
        try:
            return [str(value) for value, _ in self._facet(key, limit)]
        except StoreError:
            raise  # another process holds the shard, ...: the user must hear it, as from any search
        except Exception as exc:  # noqa: BLE001 - the values only help; retrieval goes on without them
            log.warning("cannot list the values of %r (%s); create a keyword payload index on it", key, exc)
            return []

    @abstractmethod
    def _facet(self, key: str, limit: int) -> list[tuple[Any, int]]:
        """``(value, count)`` of a keyword field over ready points (empty when the collection does not exist)."""

    @abstractmethod
    def _page(self, offset: Any, limit: int) -> tuple[list[dict[str, Any]], Any]:
        """One page of payloads (``unit_id``, ``doc_id``, ``state`` only) and the next page's offset (None: done)."""

    @abstractmethod
    def publish(self, doc_ids: Sequence[str]) -> None:
        """Makes documents' points searchable (``state: ready``), after all of them were written.

        Points are written with ``state: pending`` and `search` only sees ready ones, so a crash in the
        middle of writing a document never leaves part of it retrievable.
        """

    def upsert(self, points: Sequence[StorePoint], clock: StageClock | None = None) -> None:
        """Writes points, replacing any with the same unit id, with the BM25 vectors of their texts.

        ``clock``, when given, is charged the BM25 encoding (``bm25``) and the write (``qdrant write``).

        Raises:
            StoreError: The collection does not exist yet (call `ensure`).
            ValueError: A payload lacks ``doc_id`` or its ``unit_id`` is not the point's id.
        """
        for p in points:
            if "doc_id" not in p.payload or p.payload.get("unit_id") != p.id:
                raise ValueError(f"the payload of {p.id!r} needs doc_id and unit_id == id")
        self._check_embedder()
        if self._embedder is not None:
            points = [replace(p, payload={**p.payload, "embedder": self._embedder}) for p in points]
        clock = clock or StageClock()
        for start in range(0, len(points), _BATCH):
            batch = points[start : start + _BATCH]
            with clock.measure("bm25"):
                sparse = self._bm25.encode_documents(p.text for p in batch)
            with clock.measure("qdrant write"):
                self._write([(point_id(p.id), floats(p.dense), s, p.payload) for p, s in zip(batch, sparse)])

    def write_rows(self, rows: list[Row]) -> None:
        """Writes points exactly as another store holds them (`retrievers.migrate`): vectors and payload as
        given, nothing re-encoded, no embedder check (the payload already names its embedder)."""
        self.generation += 1
        self._write(rows)

    def search(
        self,
        dense: np.ndarray | None,
        text: str,
        *,
        mode: Mode,
        limit: int,
        candidates: int,
        rrf_k: int = 60,
        unit: str | None = None,
    ) -> list[StoreHit]:
        """Finds the best units for one query text and its embedding, best first.

        Args:
            dense: The query embedding (may be None in ``sparse`` mode).
            text: The query text, for the BM25 leg.
            mode: ``hybrid`` (RRF of both legs), ``dense`` or ``sparse``.
            limit: Hits returned.
            candidates: Hits each leg contributes before fusion (hybrid only).
            rrf_k: The RRF constant k.
            unit: Only points whose payload ``unit`` is this (``passage``, ``proposition``); all if None.
        """
        if mode not in ("hybrid", "dense", "sparse"):
            raise ValueError(f"unknown search mode {mode!r}")
        if dense is None and mode != "sparse":
            raise ValueError(f"{mode} search needs a query vector")
        legs = []
        if mode in ("hybrid", "dense"):
            legs.append(Leg("dense", "dense", np.asarray(dense, dtype=np.float32)))
        if mode in ("hybrid", "sparse"):
            legs.append(Leg("bm25", "sparse", self._bm25.encode_query(text)))
        reference = None if dense is None else np.asarray(dense, dtype=np.float64)
        return self.query(legs, limit=limit, candidates=candidates, rrf_k=rrf_k, unit=unit, reference=reference)

    def encode_query(self, text: str) -> SparseVec:
        """The BM25 query vector of a text (weight 1.0 per distinct token)."""
        return self._bm25.encode_query(text)

    def query(
        self,
        legs: Sequence[Leg],
        *,
        limit: int,
        candidates: int,
        rrf_k: int = 60,
        unit: str | None = None,
        reference: np.ndarray | None = None,
        where: dict[str, str] | None = None,
        fusion: Fusion = "rrf",
        info: dict[str, Any] | None = None,
    ) -> list[StoreHit]:
        """Runs one or more legs, best first.

        One leg is a plain nearest-neighbour search. Several are fused: by ``rrf``, one engine query whose
        prefetches are fused by reciprocal rank fusion, weighted by each leg's ``weight`` when any differs
        from 1; by ``dbsf`` or ``rrf-confidence``, each leg runs alone and `retrievers.fusion` fuses their
        scores here (the same on every backend).

        Args:
            legs: The legs (dense or BM25 vectors) to run.
            limit: Hits returned.
            candidates: Hits each leg contributes before fusion.
            rrf_k: The RRF constant k.
            unit: Only points whose payload ``unit`` is this; all if None.
            reference: The vector each hit's ``dense_score`` (cosine) is computed against.
            where: Only points whose payload has these exact keyword values (e.g. ``{"user": "ana"}``); each
                leg may narrow further (`Leg.where`).
            fusion: How several legs are fused (`retrievers.fusion`).
            info: Filled with ``fusion_weights`` (each leg's weight this query) by ``rrf-confidence``.
        """
        self._check_embedder()
        if not legs:
            raise ValueError("a query needs at least one leg")
        weights = [leg.weight for leg in legs]
        must = {"state": READY} | ({"unit": unit} if unit is not None else {}) | (where or {})
        if len(legs) == 1:
            found = self._query(list(legs), limit, candidates, rrf_k, None, must | dict(legs[0].where))
        elif fusion == "rrf" and not any(leg.where for leg in legs):
            found = self._query(list(legs), limit, candidates, rrf_k, None if set(weights) == {1.0} else weights, must)
        else:
            found = self._fuse_here(legs, limit, candidates, rrf_k, must, fusion, info)
        ref = None if reference is None else np.asarray(reference, dtype=np.float64)
        hits = [StoreHit(str(pl.get("unit_id", "")), pl, float(score), cosine(ref, vec)) for pl, score, vec in found]
        # Fusion ties (RRF: rank 1 + rank 3 = rank 3 + rank 1; DBSF: two legs that disagree about two hits) go to
        # the hit closer to the question, then by id: not to storage order or to ids that hash file paths.
        return sorted(hits, key=lambda h: (-h.score, -(h.dense_score if h.dense_score is not None else -2.0), h.unit_id))

    def _fuse_here(
        self, legs: Sequence[Leg], limit: int, candidates: int, rrf_k: int, must: dict[str, Any], fusion: Fusion,
        info: dict[str, Any] | None,
    ) -> Found:
        """Runs each leg alone and fuses their scored lists with `retrievers.fusion`."""
        points: dict[str, tuple[dict[str, Any], list[float] | None]] = {}
        scored = []
        for leg in legs:
            found = self._query([leg], candidates, candidates, rrf_k, None, must | dict(leg.where))
            for payload, _, vector in found:
                points.setdefault(str(payload.get("unit_id", "")), (payload, vector))
            scored.append([(str(payload.get("unit_id", "")), score) for payload, score, _ in found])
        fused, used = fuse(scored, [leg.weight for leg in legs], fusion, rrf_k)
        if info is not None and fusion == "rrf-confidence":
            info["fusion_weights"] = {leg.name: round(w, 3) for leg, w in zip(legs, used)}
        return [(points[key][0], score, points[key][1]) for key, score in fused[:limit]]

    @abstractmethod
    def _write(self, rows: list[Row]) -> None:
        """Upserts rows into an existing collection."""

    @abstractmethod
    def _query(
        self,
        legs: list[Leg],
        limit: int,
        candidates: int,
        rrf_k: int,
        weights: list[float] | None,
        must: dict[str, Any],
    ) -> Found:
        """Runs one engine query (empty when the collection does not exist)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _models() -> Any:
    from qdrant_client import models  # imported on use: it takes ~1 s and the Edge path never needs it

    return models


def _dimension_error(collection: str, existing: int | None, wanted: int, elsewhere: str) -> StoreError:
    held = f"{existing}-dimensional vectors" if existing else f"no {DENSE!r} and {SPARSE!r} vectors"
    return StoreError(
        f"collection {collection!r} holds {held} but {wanted}-dimensional ones were asked for (another embedder?): "
        f"use a new collection name (store.collection) or {elsewhere}, or re-ingest"
    )
