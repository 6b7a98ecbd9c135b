"""How long an ingest will take, said before it starts: the text the files hold, and how fast this machine's
embedder indexes text (timed on a sample passage), so a user with a large folder knows whether to wait, pick
a faster embedder, or scale out (README, "Scaling out")."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings
from assistant.models.base import Embedder

# Bytes of text per byte of file, roughly: markup and binary containers hold less text than their size.
_TEXT_SHARE = {".md": 1.0, ".txt": 1.0, ".html": 0.4, ".htm": 0.4, ".pdf": 0.25, ".docx": 0.3}
# Indexed text per passage's text: with propositions, each passage's words are embedded again as 4-5 short
# units (docs/BENCHMARKS.md, "Ingestion": documents/s dropped about 4x).
_PROPOSITION_COST = {"off": 1.0, "rules": 4.0, "llm": 4.0}
_SAMPLE = (
    "The committee met on Tuesday to review the proposal for the new library, which would replace the "
    "building that opened in 1962. Members asked how the cost had been estimated and whether the city "
    "could share it with the county. The architect said construction could start next spring. "
)


@dataclass(frozen=True)
class Estimate:
    """An ingest's expected duration and what it rests on."""

    files: int
    text_mb: float
    seconds: float
    chars_per_second: float

    def describe(self, settings: Settings, embedder: str) -> str:
        extra = ""
        if settings.ingestion.propositions == "llm":
            extra = ", plus the generator writing propositions (seconds per passage)"
        elif settings.ingestion.propositions == "rules":
            extra = " (propositions on: about 4x the time of passages alone)"
        return (
            f"about {_duration(self.seconds)} to index {self.files} files (~{self.text_mb:.1f} MB of text) with "
            f"{embedder} on this machine ({self.chars_per_second / 1000:.1f} K characters/s){extra}"
        )


def text_bytes(files: Sequence[Path]) -> float:
    """The text the files probably hold, in bytes (file size × a share by file type)."""
    total = 0.0
    for path in files:
        try:
            total += path.stat().st_size * _TEXT_SHARE.get(path.suffix.lower(), 1.0)
        except OSError:
            continue
    return total


def embedding_rate(embedder: Embedder, chunk_words: int = 160, batch: int = 8) -> float:
    """Characters per second this embedder indexes here, timed on a batch of passage-sized texts (after a
    first batch, which loads the model: a batch, since a runtime may serve batches and single texts apart)."""
    words = _SAMPLE.split()
    passage = " ".join(words[i % len(words)] for i in range(chunk_words))
    embedder.embed([passage] * batch)
    began = time.perf_counter()
    embedder.embed([passage] * batch)
    return len(passage) * batch / max(time.perf_counter() - began, 1e-6)


def estimate(files: Sequence[Path], embedder: Embedder, settings: Settings) -> Estimate:
    """How long indexing ``files`` should take with ``settings`` (embedding dominates: docs/BENCHMARKS.md)."""
    size = text_bytes(files)
    rate = embedding_rate(embedder)
    seconds = size / rate * _PROPOSITION_COST[settings.ingestion.propositions]
    return Estimate(len(files), size / 1e6, seconds, rate)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
