"""The two model interfaces every backend implements: `Embedder` and `Generator`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


class ModelError(RuntimeError):
    """A model could not be loaded or called; the message says how to fix it."""


@dataclass(frozen=True)
class Message:
    """One chat message. ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str


class Embedder(ABC):
    """Turns texts into L2-normalised dense vectors.

    Each model spreads cosine similarities over its own range (MiniLM's unrelated texts sit near 0, E5's near
    0.8), so the thresholds that read a similarity as "relevant" belong to the model: ``relevance_floor``
    (the relevance gate, unless ``retrieval.min_relevance`` is set) and ``memory_floor`` (memory shown to
    the generator, unless ``memory.min_similarity`` is set). docs/EVALUATION.md §4 says how each was set.
    """

    name: str
    dimension: int
    relevance_floor: float = 0.25
    memory_floor: float = 0.5

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds texts.

        Args:
            texts: The texts, any number (an empty list gives a ``(0, dimension)`` array).

        Returns:
            A float32 array of shape ``(len(texts), dimension)`` with unit-length rows.
        """

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embeds search queries (as `embed` does documents).

        Symmetric models embed both alike; asymmetric ones (E5 wants ``query:`` before a question and
        ``passage:`` before a document) override this.
        """
        return self.embed(texts)


class Generator(ABC):
    """Writes text for a list of chat messages, streamed or whole.

    Backends implement `_stream` only; stop sequences and the non-streaming call are handled here once,
    so the streamed text always equals the non-streamed one.
    """

    name: str

    @abstractmethod
    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        """Yields raw text pieces as the model produces them."""

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """Yields the answer text piece by piece, ending before the first stop sequence."""
        trimmer = StopTrimmer(stop)
        for piece in self._stream(messages, max_new_tokens, temperature):
            out = trimmer.feed(piece)
            if out:
                yield out
            if trimmer.stopped:
                return
        tail = trimmer.flush()
        if tail:
            yield tail

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
    ) -> str:
        """Returns the whole answer text (the joined `stream`)."""
        return "".join(
            self.stream(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
        )


    def next_token_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> dict[str, float]:
        """Log-probabilities that the answer to ``messages`` starts with each of ``options`` (one prefill, no
        decoding): each option's first token is scored. Used to read a yes/no judgement as a number.

        Raises:
            NotImplementedError: The backend exposes no token probabilities (endpoints, fakes).
        """
        raise NotImplementedError(f"{self.name} gives no token probabilities")


class StopTrimmer:
    """Cuts a stream of text pieces at the first stop sequence.

    It holds back the last ``max(len(stop)) - 1`` characters, because a stop sequence may be split across
    pieces, and releases them once they can no longer start one.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Adds a piece; returns the text that is safe to emit now."""
        if self.stopped:
            return ""
        self._buffer += piece
        cut = min((i for i in (self._buffer.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self._buffer = self._buffer[:cut], ""
            return out
        if self._hold == 0:
            out, self._buffer = self._buffer, ""
            return out
        out, self._buffer = self._buffer[: -self._hold], self._buffer[-self._hold :]
        return out

    def flush(self) -> str:
        """Returns whatever is still held back at the end of the stream."""
        out, self._buffer = ("" if self.stopped else self._buffer), ""
        return out
