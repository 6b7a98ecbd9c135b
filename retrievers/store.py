"""The embedded store (Qdrant Edge, a shard folder in the home) and `open_store`, which picks the backend.

The interface, the layout both backends share and the fusion of legs are in `retrievers.store_base`
(re-exported here, where callers import them from); the server backend is `retrievers.client_store`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import qdrant_edge as qe

from retrievers.points import DateRange, Leg, PointInfo, StoreHit, StorePoint  # noqa: F401 - re-exported
from retrievers.qdrant_forms import DENSE, SPARSE, dense_of, edge_condition, edge_nearest
from retrievers.shard_lock import ShardBusy, ShardLock
from retrievers.sparse import SparseVec
from retrievers.store_base import (  # noqa: F401 - re-exported: callers import the store's names from here
    _INDEXED,
    _SCANNED,
    LEGACY_EMBEDDER,
    OWNER_FILE,
    PENDING,
    READY,
    Found,
    Mode,
    Row,
    Store,
    StoreError,
    _dimension_error,
    point_id,
)

if TYPE_CHECKING:
    from assistant.config import Settings

log = logging.getLogger(__name__)


class EdgeStore(Store):
    """An embedded Qdrant Edge shard in a folder, opened on first use.

    Edge locks the shard's write-ahead log, so one process (one `EdgeStore`) owns a folder at a time.

    Args:
        path: The shard folder.
        collection: The collection name (for messages: the folder is the collection).
    """

    def __init__(self, path: Path, collection: str) -> None:
        super().__init__()
        self.path, self.collection = Path(path), collection
        self._shard: qe.EdgeShard | None = None
        self._lock = threading.RLock()
        self._home_lock = ShardLock(self.path)  # taken before Edge reads the shard (see shard_lock.py)

    def ensure(self, dimension: int) -> None:
        with self._lock:
            if self._shard is None and not self._exists():
                self._shard = self._open(qe.EdgeShard.create, _edge_config(dimension))
                # Indexes on the fields deletes and searches filter on.
                for field, kind in _INDEXED.items():
                    self._shard.update(qe.UpdateOperation.create_field_index(field, getattr(qe.PayloadSchemaType, kind)))
                return
            existing = self._stored_dimension()
            if existing is not None and existing != dimension:
                raise _dimension_error(self.collection, existing, dimension, "a new home (--home)")
            if self._shard is None:  # load() given a config checks it against the segments
                self._shard = self._add_missing_indexes(self._open(qe.EdgeShard.load, _edge_config(dimension)))

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        self.generation += 1
        if doc_ids and (shard := self._get()) is not None:
            match = qe.FieldCondition(key="doc_id", match=qe.MatchAny(list(doc_ids)))
            shard.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[match])))

    def count(self) -> int:
        shard = self._get()
        return 0 if shard is None else shard.count(qe.CountRequest(exact=True))

    def publish(self, doc_ids: Sequence[str]) -> None:
        self.generation += 1
        if doc_ids and (shard := self._get()) is not None:
            match = qe.FieldCondition(key="doc_id", match=qe.MatchAny(list(doc_ids)))
            shard.update(qe.UpdateOperation.set_payload_by_filter(qe.Filter(must=[match]), {"state": READY}))

    def close(self) -> None:
        with self._lock:
            shard, self._shard = self._shard, None
            if shard is None:
                return
            try:
                shard.flush()  # the WAL already holds every write; flushing makes the next open quick
            finally:
                try:
                    shard.close()
                    if self._owner() == str(os.getpid()):
                        (self.path / OWNER_FILE).unlink(missing_ok=True)  # the folder may have been removed meanwhile
                except OSError as exc:
                    log.warning("closing the shard at %s: %s", self.path, exc)
                finally:
                    self._home_lock.release()  # whatever happened above, the next process must get the home

    def optimize(self) -> None:
        if (shard := self._get()) is not None:
            shard.optimize()

    def _facet(self, key: str, limit: int) -> list[tuple[Any, int]]:
        if (shard := self._get()) is None:
            return []
        ready = qe.Filter(must=[edge_condition("state", READY)])
        return [(h.value, h.count) for h in shard.facet(qe.FacetRequest(key=key, limit=limit, exact=True, filter=ready)).hits]

    def _page(self, offset: Any, limit: int) -> tuple[list[dict[str, Any]], Any]:
        if (shard := self._get()) is None:
            return [], None
        request = qe.ScrollRequest(offset=offset, limit=limit, with_payload=list(_SCANNED), with_vector=False)
        records, after = shard.scroll(request)
        return [r.payload or {} for r in records], after

    def _write(self, rows: list[Row]) -> None:
        if (shard := self._get()) is None:
            raise StoreError(f"no collection at {self.path} yet: call ensure(dimension) first")
        vectors = ({DENSE: d, SPARSE: qe.SparseVector(s.indices, s.values)} for _, d, s, _ in rows)
        points = [qe.Point(id=r[0], vector=v, payload=r[3]) for r, v in zip(rows, vectors)]
        shard.update(qe.UpdateOperation.upsert_points(points))

    def _query(
        self,
        legs: list[Leg],
        limit: int,
        candidates: int,
        rrf_k: int,
        weights: list[float] | None,
        must: dict[str, Any],
    ) -> Found:
        if (shard := self._get()) is None:
            return []
        only = qe.Filter(must=[edge_condition(k, v) for k, v in must.items()])
        out = {"limit": limit, "with_payload": True, "with_vector": [DENSE]}
        nearest = [edge_nearest(leg) for leg in legs]
        if len(legs) == 1:
            request = qe.QueryRequest(query=nearest[0], filter=only, **out)
        else:
            prefetches = [qe.Prefetch(limit=candidates, query=q, filter=only) for q in nearest]
            request = qe.QueryRequest(prefetches=prefetches, query=qe.Fusion.Rrf(k=rrf_k, weights=weights), **out)
        return [(p.payload or {}, p.score, dense_of(p.vector)) for p in shard.query(request)]

    def _exists(self) -> bool:
        return (self.path / "edge_config.json").is_file()

    def rows(self, page: int = 256) -> Iterator[list[Row]]:
        """Every point, whole (dense and BM25 vectors, payload), in pages: what `retrievers.migrate` copies."""
        if (shard := self._get()) is None:
            return
        offset: Any = None
        while True:
            records, offset = shard.scroll(qe.ScrollRequest(offset=offset, limit=page, with_payload=True, with_vector=True))
            yield [
                (str(r.id), list(r.vector[DENSE]), SparseVec(list(r.vector[SPARSE].indices), list(r.vector[SPARSE].values)),
                 dict(r.payload or {}))
                for r in records
            ]
            if offset is None:
                return

    @property
    def dimension(self) -> int | None:
        """The dense vector size of the existing shard (None before it exists)."""
        return self._stored_dimension()

    def _stored_dimension(self) -> int | None:
        # Edge persists its config here (documented); None leaves the check to load().
        try:
            return int(json.loads((self.path / "edge_config.json").read_text())["vectors"][DENSE]["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _get(self) -> qe.EdgeShard | None:
        with self._lock:
            if self._shard is None and self._exists():
                self._shard = self._add_missing_indexes(self._open(qe.EdgeShard.load, None))
            return self._shard

    @staticmethod
    def _add_missing_indexes(shard: qe.EdgeShard) -> qe.EdgeShard:
        """A shard made by an older Tessera lacks the newer payload indexes (facets need them)."""
        for field in sorted(set(_INDEXED) - set(shard.info().payload_schema)):
            shard.update(qe.UpdateOperation.create_field_index(field, getattr(qe.PayloadSchemaType, _INDEXED[field])))
        return shard

    def _open(self, opener: Callable[[str, Any], qe.EdgeShard], config: qe.EdgeConfig | None) -> qe.EdgeShard:
        try:
            self._home_lock.acquire()
            shard = opener(str(self.path), config)
        except ShardBusy as e:
            raise self._busy() from e
        except Exception as e:  # Edge raises a bare Exception whose text names the cause
            self._home_lock.release()
            if "WouldBlock" in str(e):  # "Can't init WAL: Kind(WouldBlock)": another handle holds the lock
                raise self._busy() from e
            raise StoreError(f"cannot open the Qdrant Edge shard at {self.path}: {e}") from e
        (self.path / OWNER_FILE).write_text(str(os.getpid()))
        return shard

    def _busy(self) -> StoreError:
        owner = self._owner()
        by = f" (pid {owner})" if owner.isdigit() else ""
        return StoreError(f"another Tessera process{by} is using {self.path}; close it or use a different --home")

    def _owner(self) -> str:
        # The lock file names the current holder; the shard's own file may be an earlier owner's.
        if owner := self._home_lock.owner():
            return owner
        try:
            return (self.path / OWNER_FILE).read_text().strip()
        except OSError:
            return ""


def open_store(settings: Settings) -> Store:
    """The store the settings name: a server when ``store.qdrant_url`` is set, else Edge in the home."""
    if settings.store.qdrant_url:
        from qdrant_client import QdrantClient

        from retrievers.client_store import ClientStore

        client = QdrantClient(url=settings.store.qdrant_url, api_key=settings.store.qdrant_api_key)
        return ClientStore(client, settings.store.collection)
    return EdgeStore(settings.qdrant_path, settings.store.collection)


def _edge_config(dimension: int) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )
