"""A reply cache for evaluation runs, so ablation rows that share an LLM step share its calls.

Greedy decoding is deterministic: the same generator, messages, token limit and stop sequences give the
same text. Ablation rows (+HyDE, +expansion, +CSQE, all) repeat each other's steps, and on two CPU cores
each call costs seconds. A cache hit replays the text and counts the seconds the original call took in
`replayed_seconds`, which the runner adds to the question's latency, so a cached run reports the latency
an uncached one would have had. Sampled (temperature > 0) calls are never cached.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.models.base import Generator, Message


class CachedGenerator(Generator):
    """Wraps a generator with an SQLite reply cache.

    Args:
        inner: The real generator (backends load their model on first call, so a run served wholly
            from the cache never loads it).
        path: The SQLite file.
    """

    def __init__(self, inner: Generator, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.replayed_seconds = 0.0
        self.hits = self.misses = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT, seconds REAL)")
        self._lock = threading.Lock()

    @property
    def has_chat_template(self) -> bool:
        return getattr(self.inner, "has_chat_template", True)

    def __getattr__(self, attribute: str) -> Any:
        # Backend extras (tokenizer, attention scoring...) come from the real generator.
        if attribute.startswith("_") or attribute == "inner":
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        return self.inner._stream(messages, max_new_tokens, temperature)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        if temperature > 0:
            yield from self.inner.stream(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
            return
        key = self._key(messages, max_new_tokens, stop)
        with self._lock:
            row = self._db.execute("SELECT text, seconds FROM replies WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self.hits += 1
            self.replayed_seconds += row[1]
            yield row[0]
            return
        self.misses += 1
        began = time.perf_counter()
        pieces = []
        for piece in self.inner.stream(messages, max_new_tokens=max_new_tokens, temperature=0.0, stop=stop):
            pieces.append(piece)
            yield piece
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (key, "".join(pieces), time.perf_counter() - began)
            )

    def next_token_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> dict[str, float]:
        # A judgement (reranking) is deterministic too: cached like a reply, as JSON, under its own key.
        key = self._key(messages, 0, ["logprobs", *options])
        with self._lock:
            row = self._db.execute("SELECT text, seconds FROM replies WHERE key = ?", (key,)).fetchone()
        if row is not None:
            self.hits += 1
            self.replayed_seconds += row[1]
            return json.loads(row[0])
        self.misses += 1
        began = time.perf_counter()
        logprobs = self.inner.next_token_logprobs(messages, options)
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?)", (key, json.dumps(logprobs), time.perf_counter() - began)
            )
        return logprobs

    def _key(self, messages: Sequence[Message], max_new_tokens: int, stop: Sequence[str]) -> str:
        # The backend class too: one model name answers differently on llama.cpp and on transformers.
        data = [self.name, type(self.inner).__name__, [(m.role, m.content) for m in messages], max_new_tokens, list(stop)]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()

    def close(self) -> None:
        self._db.close()
