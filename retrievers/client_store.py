"""A Qdrant server or cluster as the store, through qdrant-client (its local mode in tests and `migrate`).

The same collection layout, payload indexes and query semantics as the embedded `EdgeStore`; imported only
where a server is used, since qdrant-client takes about a second to import.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from retrievers.points import Leg
from retrievers.qdrant_forms import DENSE, SPARSE, client_condition, client_vector, dense_of
from retrievers.store_base import _INDEXED, _SCANNED, READY, Found, Row, Store, StoreError, _dimension_error, _models

if TYPE_CHECKING:
    from qdrant_client import QdrantClient


class ClientStore(Store):
    """A collection on a Qdrant server or cluster (or ``QdrantClient(":memory:")`` in tests).

    Args:
        client: The client; `close` closes it.
        collection: The collection name.
    """

    def __init__(self, client: QdrantClient, collection: str) -> None:
        super().__init__()
        self.client, self.collection = client, collection
        self._ready = False  # the collection is known to exist

    def ensure(self, dimension: int) -> None:
        m = _models()
        if self.client.collection_exists(self.collection):
            # A collection made beforehand (a cluster's, with its own shard_number and replication_factor) is
            # used if its vectors fit; it gains whatever payload indexes it lacks.
            info = self.client.get_collection(self.collection)
            vectors, sparse = info.config.params.vectors, info.config.params.sparse_vectors or {}
            existing = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
            existing = existing if SPARSE in sparse else None
            if existing != dimension:
                raise _dimension_error(self.collection, existing, dimension, "another server")
            missing = {f: k for f, k in _INDEXED.items() if f not in (info.payload_schema or {})}
        else:
            self.client.create_collection(
                self.collection,
                vectors_config={DENSE: m.VectorParams(size=dimension, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
            missing = dict(_INDEXED)
        with warnings.catch_warnings():  # local mode warns that payload indexes do nothing there
            warnings.simplefilter("ignore", UserWarning)
            for field, kind in missing.items():
                self.client.create_payload_index(self.collection, field, getattr(m.PayloadSchemaType, kind.upper()))
        self._ready = True

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        self.generation += 1
        if doc_ids and self._exists():
            m = _models()
            match = m.FieldCondition(key="doc_id", match=m.MatchAny(any=list(doc_ids)))
            selector = m.FilterSelector(filter=m.Filter(must=[match]))
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count if self._exists() else 0

    def publish(self, doc_ids: Sequence[str]) -> None:
        self.generation += 1
        if doc_ids and self._exists():
            m = _models()
            match = m.Filter(must=[m.FieldCondition(key="doc_id", match=m.MatchAny(any=list(doc_ids)))])
            self.client.set_payload(self.collection, payload={"state": READY}, points=match, wait=True)

    def close(self) -> None:
        self.client.close()  # the server persisted every write already (upserts wait for it)

    def _facet(self, key: str, limit: int) -> list[tuple[Any, int]]:
        if not self._exists():
            return []
        m = _models()
        ready = m.Filter(must=[client_condition(m, "state", READY)])
        return [(h.value, h.count) for h in self.client.facet(self.collection, key, facet_filter=ready, limit=limit, exact=True).hits]

    def _page(self, offset: Any, limit: int) -> tuple[list[dict[str, Any]], Any]:
        if not self._exists():
            return [], None
        records, after = self.client.scroll(
            self.collection, offset=offset, limit=limit, with_payload=list(_SCANNED), with_vectors=False
        )
        return [r.payload or {} for r in records], after

    def _write(self, rows: list[Row]) -> None:
        if not self._exists():
            raise StoreError(f"collection {self.collection!r} does not exist yet: call ensure(dimension) first")
        m = _models()
        vectors = ({DENSE: d, SPARSE: m.SparseVector(indices=s.indices, values=s.values)} for _, d, s, _ in rows)
        points = [m.PointStruct(id=r[0], vector=v, payload=r[3]) for r, v in zip(rows, vectors)]
        self.client.upsert(self.collection, points=points, wait=True)

    def _query(
        self,
        legs: list[Leg],
        limit: int,
        candidates: int,
        rrf_k: int,
        weights: list[float] | None,
        must: dict[str, Any],
    ) -> Found:
        if not self._exists():
            return []
        m = _models()
        only = m.Filter(must=[client_condition(m, k, v) for k, v in must.items()])
        out = {"limit": limit, "with_payload": True, "with_vectors": [DENSE]}
        queries = [(client_vector(m, leg), DENSE if leg.using == "dense" else SPARSE) for leg in legs]
        if len(legs) == 1:
            query, using = queries[0]
            result = self.client.query_points(self.collection, query=query, using=using, query_filter=only, **out)
        else:
            prefetch = [m.Prefetch(query=q, using=using, limit=candidates, filter=only) for q, using in queries]
            fusion = m.RrfQuery(rrf=m.Rrf(k=rrf_k, weights=weights))
            result = self.client.query_points(self.collection, prefetch=prefetch, query=fusion, **out)
        return [(p.payload or {}, p.score, dense_of(p.vector)) for p in result.points]

    def _exists(self) -> bool:
        self._ready = self._ready or self.client.collection_exists(self.collection)
        return self._ready
