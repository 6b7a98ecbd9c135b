"""BM25 sparse vectors from Qdrant Edge's built-in embedder, the one implementation both stores use.

`qdrant_edge.Bm25` tokenizes, drops English stopwords and stems exactly as Qdrant server's `qdrant/bm25`
does, and hashes tokens to murmur3 ids, so a collection written here can move to a server unchanged.
It encodes the two sides differently: a document gets saturated term-frequency weights
(k=1.2, b=0.75, avg_len=256), a query gets weight 1.0 per unique token. The IDF half of BM25 is
applied by the engine at search time (the sparse vector is configured with the IDF modifier).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import qdrant_edge


@dataclass(frozen=True)
class SparseVec:
    """A sparse vector independent of either Qdrant package.

    Attributes:
        indices: Token ids (murmur3 hashes), one per distinct token.
        values: The weight of each token, aligned with ``indices``.
    """

    indices: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.indices)


class Bm25Encoder:
    """Turns text into BM25 sparse vectors (document side and query side).

    Args:
        config: BM25 parameters and tokenizer settings; ``None`` takes the Qdrant defaults (English).
    """

    def __init__(self, config: qdrant_edge.Bm25Config | None = None) -> None:
        self._bm25 = qdrant_edge.Bm25(config)

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVec]:
        """Encodes indexed texts with term-frequency weights."""
        return [_convert(self._bm25.embed_document(text)) for text in texts]

    def encode_query(self, text: str) -> SparseVec:
        """Encodes a query: each distinct token weighs 1.0, so the score is a sum of IDF x TF terms."""
        return _convert(self._bm25.embed_query(text))


def _convert(vector: qdrant_edge.SparseVector) -> SparseVec:
    return SparseVec(indices=list(vector.indices), values=[float(v) for v in vector.values])


def weighted_sum(parts: Iterable[tuple[SparseVec, float]]) -> SparseVec:
    """Adds sparse vectors with weights: how a query repeated n times plus an expansion is encoded.

    BM25 counts a query term once per occurrence, so "the query 5 times + the expansion" (Jagerman et al.)
    is the query's vector times 5 plus the expansion's.
    """
    total: dict[int, float] = {}
    for vector, weight in parts:
        for index, value in zip(vector.indices, vector.values):
            total[index] = total.get(index, 0.0) + weight * value
    return SparseVec(indices=list(total), values=list(total.values()))
