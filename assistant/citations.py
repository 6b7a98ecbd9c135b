"""Reading ``[n]`` citations out of an answer and mapping them to sources (whether a source supports its
sentence is `assistant.support`'s job)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.types import Citation, Hit

_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


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


def citations_for(numbers: Sequence[int], hits: Sequence[Hit]) -> tuple[Citation, ...]:
    """Maps valid source numbers to `Citation` objects."""
    return tuple(Citation(n, hits[n - 1]) for n in numbers if 1 <= n <= len(hits))


def recite(sentence: str, n: int) -> str:
    """``sentence`` with every citation marker pointing at source ``n`` instead."""
    return _MARKER.sub(f"[{n}]", sentence)


def strip_markers(text: str) -> str:
    """``text`` without its citation markers."""
    return re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub("", text)).strip()
