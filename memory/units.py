"""Making memory units from an exchange (MemGAS keeps a conversation at three granularities).

A *turn* keeps the exchange verbatim, a *fact* keeps its salient keywords (names, numbers, dates, the
question's content words) so a later question that shares them lands on it, and a session *summary* keeps
the gist of a whole session, rewritten as the session grows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from assistant.models.base import Embedder, Generator
from assistant.types import Exchange, MemoryUnit

_STOPWORDS = frozenset(
    "a about above after again all also am an and any are as at be because been before being below between "
    "both but by can could did do does doing down during each few for from further had has have having he "
    "her here hers him his how i if in into is it its itself just let me more most my myself no nor not of "
    "off on once only or other our ours out over own please same she should so some such than that the "
    "their theirs them then there these they this those through to too under until up very was we were "
    "what when where which while who whom why will with would you your yours yourself tell know think "
    "like want get got called name named".split()
)
_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_DATE = re.compile(
    rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b"
    rf"|\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+)?{_MONTHS}(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{4}})?\b"
)
_NUMBER = re.compile(r"\b\d[\d,.]*(?:%| [A-Za-z]+)?")
_NAME = re.compile(r"\b[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*")
_WORD = re.compile(r"[A-Za-z][\w'-]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_MAX_KEYWORDS = 12
_SUMMARY_PROMPT = (
    "Summarise this conversation in two or three sentences (a line starting \"Earlier:\" summarises its "
    "beginning). Keep names, numbers, dates and what the user said about themselves.\n\n{conversation}\n\nSummary:"
)
_KEYWORDS_PROMPT = (
    "List the keywords of this exchange: the names, places, dates, numbers and topics someone might later "
    "ask about. Separate them with semicolons.\n\n{exchange}\n\nKeywords:"
)
_MAX_KEYWORD_WORDS = 6  # longer "keywords" are sentences: the reply did not follow the format


def turn_text(exchange: Exchange) -> str:
    """The text a turn unit remembers."""
    return f"User: {exchange.question.strip()}\nAssistant: {exchange.answer.strip()}"


def turn_unit(user: str, session: str, turn_id: str, exchange: Exchange, created_at: float) -> MemoryUnit:
    """The verbatim exchange as a ``turn`` unit."""
    return MemoryUnit(f"turn-{turn_id}", "turn", turn_text(exchange), session, (turn_id,), created_at, user)


def keywords(text: str, *, content_words: bool = True) -> list[str]:
    """Salient phrases of a text, in order of appearance, without duplicates (case-insensitive).

    Dates, numbers with the word after them, capitalised names (multi-word kept whole, leading stopwords
    dropped; a lone capitalised word not when it opens a sentence) and, with ``content_words``, the other
    non-stopword words (lower-cased).
    """
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, phrase: str) -> None:
        if phrase and not any(start < e and s < end for s, e in taken):
            found.append((start, phrase))
            taken.append((start, end))

    for m in _DATE.finditer(text):
        add(m.start(), m.end(), m.group().strip(" ,."))
    for m in _NUMBER.finditer(text):
        number, _, unit = m.group().partition(" ")
        kept = m.group() if unit and unit.lower() not in _STOPWORDS else number  # "1889 the" → "1889"
        add(m.start(), m.start() + len(kept), kept.strip(" ,."))
    for m in _NAME.finditer(text):
        words = m.group().split()
        while words and words[0].lower() in _STOPWORDS:  # "My Cat" at a sentence start → "Cat"
            words.pop(0)
        start = m.end() - len(" ".join(words))
        at_sentence_start = not text[:start].rstrip() or text[:start].rstrip()[-1] in ".!?:\n"
        if words and (len(words) > 1 or not at_sentence_start):  # "Nice name!": capitalised by grammar
            add(start, m.end(), " ".join(words))
    if content_words:
        for m in _WORD.finditer(text):
            if m.group().lower() not in _STOPWORDS and len(m.group()) > 2:
                add(m.start(), m.end(), m.group().lower())
    return _unique(phrase for _, phrase in sorted(found))


def _unique(phrases: Iterable[str]) -> list[str]:
    """The first ``_MAX_KEYWORDS`` phrases, without case-insensitive repeats."""
    first: dict[str, str] = {}
    for phrase in phrases:
        first.setdefault(phrase.lower(), phrase)
    return list(first.values())[:_MAX_KEYWORDS]


def rule_keywords(exchange: Exchange) -> list[str]:
    """The exchange's keywords without a model: the question gives all its keywords; the answer only its
    names, numbers and dates (its other words are the assistant's phrasing, not something the user said)."""
    return _unique(keywords(exchange.question) + keywords(exchange.answer, content_words=False))


def llm_keywords(exchange: Exchange, generator: Generator, info: dict[str, Any], *, max_new_tokens: int = 48) -> list[str] | None:
    """The generator's keywords for the exchange (MemGAS); None, with ``info["fallback"]`` saying why, when it
    fails or lists nothing keyword-shaped."""
    from retrievers.llm_step import Malformed, ask_llm  # no heavy deps; one fallback policy

    def parse(reply: str) -> list[str]:
        line = next((x for x in reply.splitlines() if x.strip()), "")  # small models may open with a newline
        phrases = [p.strip(" .*-\"'") for p in re.split(r"[;,]", line)]
        phrases = [p for p in phrases if p and len(p.split()) <= _MAX_KEYWORD_WORDS]
        if not phrases:
            raise Malformed(f"expected keywords separated by semicolons, got {reply!r}")
        return _unique(phrases)

    prompt = _KEYWORDS_PROMPT.format(exchange=turn_text(exchange))
    return ask_llm(generator, prompt, parse, info, max_new_tokens=max_new_tokens, stop=("\n\n",))


def fact_units(
    user: str, session: str, turn_id: str, exchange: Exchange, created_at: float, phrases: Sequence[str] | None = None
) -> list[MemoryUnit]:
    """A keyword ``fact`` unit for a turn, or none when the turn has no salient phrase.

    ``phrases`` are the keywords (the model's, with ``memory.facts = llm``); by default `rule_keywords`.
    """
    phrases = list(phrases) if phrases is not None else rule_keywords(exchange)
    if not phrases:
        return []
    source = " ".join(exchange.question.split())[:120]
    text = f"Keywords: {'; '.join(phrases)} — from: {source}"
    return [MemoryUnit(f"fact-{turn_id}", "fact", text, session, (turn_id,), created_at, user)]


def summary_id(user: str, session: str) -> str:
    """The one summary id of a session: the same on every rewrite, so the new summary replaces the old."""
    return "summary-" + hashlib.sha256(f"{user}\x1f{session}".encode()).hexdigest()[:32]


def summary_unit(user: str, session: str, text: str, turn_ids: Sequence[str], created_at: float) -> MemoryUnit:
    """The session's ``summary`` unit."""
    return MemoryUnit(summary_id(user, session), "summary", text, session, tuple(turn_ids), created_at, user)


def sentences(texts: Sequence[str]) -> list[str]:
    """The texts' sentences (and lines), in order, without exact repeats."""
    return list(dict.fromkeys(s.strip() for t in texts for s in _SENTENCE.split(t) if s.strip()))


def extractive_summary(
    texts: Sequence[str], embedder: Embedder, max_sentences: int = 3, centre: np.ndarray | None = None
) -> str:
    """The most central sentences (highest cosine to ``centre``), in original order, one per line.

    Args:
        texts: The texts whose sentences compete.
        embedder: Embeds the sentences.
        max_sentences: Sentences kept.
        centre: What "central" is measured against; the sentences' mean embedding if None. `Memory` passes
            the mean of the session's turn vectors and only the previous summary and the new turn as texts,
            so a turn costs a few embeddings however long the session is.
    """
    if max_sentences < 1:
        raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
    parts = sentences(texts)
    if len(parts) <= max_sentences:
        return "\n".join(parts)
    vectors = embedder.embed(parts)
    centre = vectors.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float32)
    centrality = vectors @ (centre / (np.linalg.norm(centre) or 1.0))
    keep = sorted(np.argsort(-centrality, kind="stable")[:max_sentences])
    return "\n".join(parts[i] for i in keep)  # lines, so re-splitting the summary gives its sentences back


def llm_summary(
    texts: Sequence[str], generator: Generator, fallback: Callable[[], str], *, max_new_tokens: int = 96,
    info: dict[str, Any] | None = None,
) -> str:
    """The generator's summary of the session; ``fallback()`` when it fails or writes under five words (then
    ``info["fallback"]`` says why)."""
    from retrievers.llm_step import Malformed, ask_llm, first_paragraph, words  # no heavy deps; one fallback policy

    def parse(reply: str) -> str:
        summary = first_paragraph(reply)
        if words(summary) < 5:
            raise Malformed(f"a summary needs at least 5 words, got {summary!r}")
        return summary

    prompt = _SUMMARY_PROMPT.format(conversation="\n".join(texts))
    summary = ask_llm(generator, prompt, parse, {} if info is None else info, max_new_tokens=max_new_tokens, stop=("\n\n",))
    return summary if summary is not None else fallback()
