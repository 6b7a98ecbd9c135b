"""Reading ``[n]`` citations out of an answer, and attributing an uncited answer to its sources."""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.types import Citation, Hit

_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been it its this that as".split()
)


def cited_numbers(text: str) -> list[int]:
    """The source numbers cited in ``text``, in order of first appearance, each once."""
    seen: list[int] = []
    for match in _MARKER.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            n = int(part)
            if n not in seen:
                seen.append(n)
    return seen


def strip_invalid(text: str, n_sources: int) -> tuple[str, list[int]]:
    """Removes markers that point past the sources; returns the text and the dropped numbers."""
    dropped: list[int] = []

    def keep(match: re.Match[str]) -> str:
        numbers = [int(p) for p in re.split(r"[,;]", match.group(1))]
        valid = [n for n in numbers if 1 <= n <= n_sources]
        dropped.extend(n for n in numbers if n not in valid)
        return "[" + ", ".join(map(str, valid)) + "]" if valid else ""

    cleaned = _MARKER.sub(keep, text)
    return re.sub(r"\s+([.,;:!?])", r"\1", cleaned).strip(), dropped


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def supporting_source(answer: str, hits: Sequence[Hit]) -> int | None:
    """The 1-based source sharing the most content words with ``answer`` (None if none shares any).

    Used when a small model answers without citing: the answer is attributed to the source it was
    evidently taken from, and the trace records that the citation was attributed, not written.
    """
    words = _content_words(_MARKER.sub("", answer))
    if not words:
        return None
    overlaps = [len(words & _content_words(hit.text)) for hit in hits]
    best = max(range(len(hits)), key=lambda i: (overlaps[i], -i), default=None)
    return None if best is None or overlaps[best] == 0 else best + 1


def citations_for(numbers: Sequence[int], hits: Sequence[Hit]) -> tuple[Citation, ...]:
    """Maps valid source numbers to `Citation` objects."""
    return tuple(Citation(n, hits[n - 1]) for n in numbers if 1 <= n <= len(hits))


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")


def unsupported_claims(text: str, hits: Sequence[Hit]) -> list[str]:
    """The sentences of an answer that no citation supports.

    A sentence is supported when it cites a source ([n], valid) that shares at least one content word with
    it; a sentence with no content words of its own (a bare "Yes [2].") counts as supported by its marker.
    """
    unsupported = []
    for sentence in (s.strip() for s in _SENTENCE.split(text)):
        words = _content_words(_MARKER.sub("", sentence))
        numbers = [n for n in cited_numbers(sentence) if 1 <= n <= len(hits)]
        if not sentence or (not words and numbers):
            continue
        if not any(words & _content_words(hits[n - 1].text) for n in numbers):
            unsupported.append(sentence)
    return unsupported
