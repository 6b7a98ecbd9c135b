"""Moving a home's embedded Qdrant Edge shards to a Qdrant server (or a qdrant-client local folder).

Every point is copied whole — its dense vector, its BM25 vector as stored (no re-encoding, so the server's
IDF sees the same tokens) and its payload, `state` and `embedder` included — into a collection created with
the same layout and payload indexes as `ClientStore.ensure` makes. Nothing is re-embedded, so a million
units move at the speed of the network, not the model. The source is only read.
"""

from __future__ import annotations

from dataclasses import dataclass

from tqdm import tqdm

from retrievers.client_store import ClientStore
from retrievers.store import EdgeStore, StoreError


@dataclass(frozen=True)
class Copied:
    """What one collection's copy did."""

    source: str
    target: str
    points: int


def copy_shard(source: EdgeStore, target: ClientStore, *, progress: bool = False, page: int = 256) -> Copied:
    """Copies every point of ``source`` into ``target``'s collection, creating it.

    Raises:
        StoreError: The target collection already holds points (a second copy would mix two indexes), or the
            copy's point count differs from the source's.
    """
    dimension = source.dimension
    if dimension is None:
        return Copied(str(source.path), target.collection, 0)
    if target.count():
        raise StoreError(
            f"collection {target.collection!r} on the target already holds {target.count()} points; copy into an "
            "empty collection (store.collection names another) or delete that one first"
        )
    target.ensure(dimension)
    total = source.count()
    with tqdm(total=total, unit="point", desc=f"copying {target.collection}", disable=not progress, leave=False) as bar:
        for rows in source.rows(page):
            target.write_rows(rows)
            bar.update(len(rows))
    copied = target.count()
    if copied != total:
        raise StoreError(f"copied {copied} of {total} points into {target.collection!r}; run the migration again into an empty collection")
    return Copied(str(source.path), target.collection, copied)
