"""Corpus-steered query expansion (Lei et al., "Corpus-Steered Query Expansion with Large Language Models").

A first-pass retrieval finds the top hits; the generator is shown their sentences, numbered, and names the
ones that bear on the query. Those sentences come from the corpus, so unlike the LLM's own expansion they
cannot be hallucinated; they expand the BM25 query alongside it. Asking for sentence numbers rather than
copied text keeps the reply short and checkable for a small model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from assistant.models.base import Generator
from retrievers.llm_step import Malformed, ask_llm

PROMPT = (
    "Below are numbered sentences from documents, and a question. Which sentences help answer the "
    "question? Reply with their numbers only, separated by commas (for example: 2, 5).\n\n"
    "{sentences}\n\nQuestion: {query}\nHelpful sentences:"
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_MAX_SENTENCES = 15  # keeps the prompt short enough for a small model's attention
_MIN_CHARS = 20
_NUMBER_LIST = re.compile(r"^\s*\d+(?:\s*(?:,|and)\s*\d+)*\s*\.?\s*$")
_LEADING_NUMBER = re.compile(r"^\s*(\d+)[.)]\s")
_COPIED_CHARS = 40  # a reply holding a sentence's first 40 characters copied it


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage (a light rule: end punctuation, then a capital or digit)."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if len(s.strip()) >= _MIN_CHARS]


class CorpusSteeredExpander:
    """Picks the first-pass sentences the generator judges relevant to the query.

    Args:
        generator: Judges the sentences.
        max_new_tokens: Length limit of the reply.
    """

    def __init__(self, generator: Generator, *, max_new_tokens: int = 32) -> None:
        self.generator = generator
        self.max_new_tokens = max_new_tokens

    def select(self, query: str, passages: Sequence[str], info: dict[str, Any]) -> list[str]:
        """The sentences chosen from ``passages`` (first-pass hits, best first); ``[]`` on a bad reply."""
        sentences = [s for p in passages for s in split_sentences(p)][:_MAX_SENTENCES]
        info["shown"] = len(sentences)
        if not sentences:
            info["fallback"] = "the first-pass hits had no sentences"
            return []
        numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, 1))
        chosen = ask_llm(
            self.generator,
            PROMPT.format(sentences=numbered, query=query),
            lambda reply: _parse_choice(reply, sentences),
            info,
            max_new_tokens=self.max_new_tokens,
            stop=("\n\n", "\nQuestion:"),
        )
        picked = [sentences[n - 1] for n in chosen or []]
        info["selected"] = picked
        return picked


def _parse_choice(reply: str, sentences: Sequence[str]) -> list[int]:
    """Sentence numbers from a reply: a list of numbers ("2, 5"), lines that start with one ("2. ..."),
    or sentences copied out verbatim (small models often copy instead of numbering)."""
    numbers = []
    for line in reply.strip().splitlines():
        if _NUMBER_LIST.match(line):
            numbers += [int(n) for n in re.findall(r"\d+", line)]
        elif (lead := _LEADING_NUMBER.match(line)) is not None:
            numbers.append(int(lead.group(1)))
    flat = _normalise(reply)
    numbers += [i for i, s in enumerate(sentences, 1) if _normalise(s)[:_COPIED_CHARS] in flat]
    valid = list(dict.fromkeys(n for n in numbers if 1 <= n <= len(sentences)))
    if not valid:
        raise Malformed(f"expected sentence numbers between 1 and {len(sentences)}, got {reply.strip()[:200]!r}")
    return valid


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())
