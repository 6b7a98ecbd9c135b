"""Deterministic stand-ins for models, for unit tests (no weights load)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence

import numpy as np

from assistant.models.base import Embedder, Generator, Message


class FakeEmbedder(Embedder):
    """Bag-of-words hashing embedder: texts sharing words get similar vectors, deterministically."""

    name = "fake"

    def __init__(self, dimension: int = 64) -> None:
        if dimension < 2:
            raise ValueError(f"dimension must be at least 2, got {dimension}")
        self.dimension = dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else np.eye(self.dimension, dtype=np.float32)[0]
        return out


class FakeGenerator(Generator):
    """Replies from a queue (or a default), streaming word by word; records every call.

    Example:
        >>> gen = FakeGenerator(["Paris [1]."])
        >>> gen.generate([Message("user", "capital?")])
        'Paris [1].'
    """

    name = "fake"

    def __init__(self, replies: Sequence[str] = (), default: str = "I don't know.") -> None:
        self.replies = list(replies)
        self.default = default
        self.calls: list[list[Message]] = []

    def enqueue(self, *replies: str) -> None:
        """Adds replies to give, in order, to the next calls."""
        self.replies.extend(replies)

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        self.calls.append(list(messages))
        reply = self.replies.pop(0) if self.replies else self.default
        yield from re.findall(r"\S+\s*|\s+", reply)
