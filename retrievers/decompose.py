"""Multi-part questions: the sub-queries a question that names several things, or asks several things, needs.

A question that compares or combines documents ("Are Christopher Nolan and Sathish Kalathil both film
directors?", "Which band formed first, The Exies or Circus Diablo?") gets one ranked list in which the
better-matching part takes most places. Retrieving for each part separately and interleaving the lists
(`interleave`) gives every part's best documents a place. The rules here need no model:

- **coordinated names**: two capitalised names joined by "and", "or", "vs"/"versus" or "compared with/to"
  → one sub-query per name, the question with the pair replaced by it (lists of three are left alone: a
  comma before a capitalised word is too often not a list, as in "Which singer is American, A or B?");
- **several questions in one**: two or more sentences that each end in "?" → one sub-query each.

Anything else (a single subject, lower-case coordination such as "in or around") yields no sub-queries, so
the question is retrieved as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")

MAX_PARTS = 4
# A name's words: capitalised or numeric ("Woman's", "BWV", "1033"); lower-case joiners may sit between them.
_WORD = re.compile(r"[A-Z0-9][\w'’.&-]*|[a-z][\w'’-]*|[^\w\s]+")
_JOINERS = {"of", "the", "de", "la", "le", "du", "von", "van", "der", "del", "da", "di", "for", "on", "in", "&"}
_CONJUNCTIONS = {"and", "or", "vs", "vs.", "versus"}
# Capitalised words that start a question or clause rather than a name.
_NOT_NAMES = {
    "are", "is", "was", "were", "which", "who", "whom", "whose", "what", "when", "where", "why", "how", "did",
    "do", "does", "has", "have", "had", "can", "could", "will", "would", "should", "in", "on", "at", "of",
    "for", "from", "by", "with", "both", "between", "and", "or", "compare", "i", "a", "an", "if", "than",
}  # fmt: skip
_MIN_WORDS = 3  # a part shorter than this is not a question of its own


def decompose(question: str) -> list[str]:
    """The sub-queries of a multi-part question (at most `MAX_PARTS`), or [] if it has one part."""
    parts = _split_questions(question) or _split_names(question)
    unique = list(dict.fromkeys(p for p in parts if p.strip() and p.strip() != question.strip()))
    return unique[:MAX_PARTS] if len(unique) > 1 else []


def _split_questions(question: str) -> list[str]:
    """Several questions in one: "What is X? Who founded Y?"."""
    sentences = [p.strip() for p in re.split(r"(?<=[.?!])\s+(?=[A-Z])", question.strip()) if p.strip()]
    asked = [p for p in sentences if p.endswith("?") and len(p.split()) >= _MIN_WORDS]
    return asked if len(asked) > 1 else []


def _split_names(question: str) -> list[str]:
    """Coordinated names: the question once per name, the list replaced by that name."""
    tokens = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(question)]
    for i, (word, _, _) in enumerate(tokens):
        if word.lower() not in _CONJUNCTIONS and not (word.lower() == "compared" and _next_is(tokens, i, ("with", "to"))):
            continue
        after = i + (2 if word.lower() == "compared" else 1)
        if after < len(tokens) and tokens[after][0].lower() == "the":
            after += 1
        right = _name_at(tokens, after)
        if right is None:
            continue
        left = _name_before(tokens, i)
        if left is None:
            continue
        names = [left, right]
        span_start, span_end = tokens[names[0][0]][1], tokens[right[1] - 1][2]
        head, tail = question[:span_start], question[span_end:]
        return [_tidy(head + question[tokens[a][1] : tokens[b - 1][2]] + tail) for a, b in names]
    return []


def _next_is(tokens: list[tuple[str, int, int]], i: int, words: tuple[str, ...]) -> bool:
    return i + 1 < len(tokens) and tokens[i + 1][0].lower() in words


def _is_name_word(word: str) -> bool:
    return word[0].isupper() or word[0].isdigit()


def _name_at(tokens: list[tuple[str, int, int]], i: int) -> tuple[int, int] | None:
    """The name starting at token i, as (first, one past last) token indexes."""
    if i >= len(tokens) or not _is_name_word(tokens[i][0]) or tokens[i][0].lower() in _NOT_NAMES:
        return None
    j = i + 1
    while j < len(tokens):
        if _is_name_word(tokens[j][0]):
            j += 1
        elif tokens[j][0].lower() in _JOINERS and j + 1 < len(tokens) and _is_name_word(tokens[j + 1][0]):
            j += 2
        else:
            break
    return i, j


def _name_before(tokens: list[tuple[str, int, int]], end: int) -> tuple[int, int] | None:
    """The name ending just before token ``end`` (skipping a comma: "A, or B"), as (first, one past last)."""
    j = end - 1 if end > 0 and tokens[end - 1][0] == "," else end
    i = j
    while i > 0:
        word = tokens[i - 1][0]
        if _is_name_word(word) and word.lower() not in _NOT_NAMES:
            i -= 1
        elif word.lower() in _JOINERS and i - 2 >= 0 and _is_name_word(tokens[i - 2][0]) and i < j:
            i -= 1
        else:
            break
    while i < j and not _is_name_word(tokens[i][0]):  # a name does not start with a joiner
        i += 1
    return (i, j) if i < j else None


def _tidy(text: str) -> str:
    return re.sub(r"\s+([,?])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()


def interleave(rankings: Sequence[Sequence[T]], key: Callable[[T], Hashable], limit: int, rounds: int = 2) -> list[T]:
    """Merges the whole question's ranking (first) with its parts' rankings, each item once by ``key``.

    The first ``rounds`` ranks go round-robin (the question's, then each part's), so every part's best
    items get places near the top; after that the question's own ranking continues, then the parts'.
    """
    merged: list[T] = []
    seen: set[Hashable] = set()

    def take(item: T) -> bool:
        if (k := key(item)) not in seen:
            seen.add(k)
            merged.append(item)
        return len(merged) >= limit

    for rank in range(rounds):
        for ranking in rankings:
            if rank < len(ranking) and take(ranking[rank]):
                return merged
    for ranking in rankings:
        for item in ranking[rounds:]:
            if take(item):
                return merged
    return merged
