"""A persistent embedding cache keyed by content hash, so re-ingesting text already embedded is free.

Where it pays: re-ingesting an edited document (its unchanged passages keep their vectors), rebuilding an
index under a new collection or chunking that leaves most passages intact, and evaluation runs that index
the same corpus in fresh homes. The key is ``sha256(model name, text)``: a different embedder never reads
another's vectors. Vectors are stored as float32 bytes in SQLite (1.5 KB per 384-d unit).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assistant.models.base import Embedder

_SCHEMA = "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
_LOOKUP_CHUNK = 500  # keys per SELECT: under SQLite's bound-parameter limit


class CachedEmbedder(Embedder):
    """Wraps an embedder: texts seen before come from the cache, only the others reach the model.

    Args:
        inner: The embedder that computes missing vectors.
        path: The SQLite file (created on first use).

    Attributes:
        hits: Texts answered from the cache so far.
        misses: Texts the inner embedder computed so far.
    """

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self.name = inner.name
        self.relevance_floor, self.memory_floor = inner.relevance_floor, inner.memory_floor
        self.hits = self.misses = 0
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # ingestion embeds from the main thread, counts tokens from another

    @property
    def dimension(self) -> int:  # type: ignore[override]
        return self.inner.dimension

    def count_tokens(self, text: str) -> int:
        """The inner embedder's token count (the splitter sizes passages with it)."""
        return self.inner.count_tokens(text)  # type: ignore[attr-defined]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found = self._lookup(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = self.inner.embed([texts[i] for i in missing])
            fresh = {keys[i]: vec for i, vec in zip(missing, computed)}
            self._store(fresh)
            found.update(fresh)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([np.asarray(found[k], dtype=np.float32) for k in keys])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        # Queries are asked once: they go to the model, uncached (the cache is keyed for documents).
        return self.inner.embed_queries(texts)

    def close(self) -> None:
        """Closes the SQLite file; safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.name}\0{text}".encode()).digest()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a lost cache row only costs a re-embedding
            self._db.execute(_SCHEMA)
        return self._db

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            db = self._conn()
            for start in range(0, len(unique), _LOOKUP_CHUNK):
                chunk = unique[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, blob in db.execute(f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, vectors: dict[bytes, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()]
        with self._lock:
            db = self._conn()
            db.executemany("INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)", rows)
            db.commit()
