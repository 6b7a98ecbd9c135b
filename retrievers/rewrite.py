"""Conversational multi-query rewriting (Kostric & Balog, "A Surprisingly Simple yet Effective Multi-Query
Rewriting Method for Conversational Passage Retrieval").

A follow-up such as "and when did he die?" cannot be retrieved on its own. The generator rewrites it into
several standalone queries using the conversation; each rewrite is retrieved and the results are fused,
which is more robust than betting on a single rewrite.

Guards, because a small model's rewrite can change the topic (a question about a newly added file rewritten
as one about the earlier conversation): the user's own question is always one of the fused variants; a
rewrite that drops a name or number the question holds, or that is not a question (an answer, "A: ..."), is
discarded; and a question that already stands alone (no pronoun or elliptic opening to resolve) is not
rewritten at all. The trace records each decision and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from assistant.models.base import Generator
from assistant.types import Exchange
from retrievers.llm_step import Malformed, ask_llm, words

PROMPT = (
    "Rewrite the last question so that it can be understood without the conversation: replace pronouns "
    "and vague references with the names they refer to. Write {n} different rewrites, one per line.\n\n"
    "Conversation:\n{conversation}\n\nLast question: {question}\nRewrites:\n"
)
_TURNS_SHOWN = 3  # the most recent exchanges; older ones rarely hold the referent and cost prompt time
_ANSWER_CHARS = 300
_BULLET = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")
_QUESTION_LABEL = re.compile(r"^(?:q|question|rewrite|query)\s*\d*\s*:\s*", re.IGNORECASE)
_ANSWER_LABEL = re.compile(r"^(?:a|answer)\s*:", re.IGNORECASE)
# Words that point back into the conversation: a question holding one needs the history to be understood.
_REFERS_BACK = re.compile(
    r"\b(he|him|his|she|her|hers|it|its|they|them|their|theirs|there|this|these|those|such|former|latter)\b"
    r"|^\s*(and|but|or|so|also|what about|how about)\b",
    re.IGNORECASE,
)
_ASKS = re.compile(
    r"^\s*(who|whom|whose|what|when|where|which|why|how|is|are|was|were|do|does|did|can|could|should|would|will|"
    r"has|have|had|list|name|describe|explain|tell|give|compare|summari[sz]e|show|find|define)\b",
    re.IGNORECASE,
)
_MIN_STANDALONE_WORDS = 3  # "Why?", "And the second?" are follow-ups even without a pronoun


def stands_alone(question: str) -> bool:
    """True when ``question`` needs no conversation to be understood: nothing refers back, and it is not a
    fragment. Rewriting such a question can only move it off its topic."""
    return words(question) >= _MIN_STANDALONE_WORDS and not _REFERS_BACK.search(question)


def names_in(question: str) -> list[str]:
    """The question's own names and numbers: capitalised words after the first, and words with digits."""
    tokens = re.findall(r"[\w'’-]+", question)
    return [t for i, t in enumerate(tokens) if any(c.isdigit() for c in t) or (i > 0 and t[:1].isupper() and t != "I")]


def why_discarded(rewrite: str, question: str) -> str | None:
    """Why a rewrite cannot stand for ``question`` (None when it can): it must ask, and keep its names."""
    if _ANSWER_LABEL.match(rewrite) or not (rewrite.rstrip().endswith("?") or _ASKS.match(rewrite)):
        return "not a question"
    lowered = rewrite.lower()
    dropped = [name for name in names_in(question) if name.lower() not in lowered]
    return f"drops {', '.join(dropped)}" if dropped else None


class ConversationalRewriter:
    """Turns a follow-up into standalone queries.

    Args:
        generator: Writes the rewrites.
        rewrites: How many rewrites to ask for and keep.
        max_new_tokens: Length limit of the reply.
    """

    def __init__(self, generator: Generator, *, rewrites: int = 2, max_new_tokens: int = 64) -> None:
        self.generator = generator
        self.rewrites = rewrites
        self.max_new_tokens = max_new_tokens

    def rewrite(self, question: str, history: Sequence[Exchange], info: dict[str, Any]) -> list[str]:
        """The queries to retrieve for ``question``: its usable rewrites, then the question itself.

        ``[question]`` when there is no history, the question stands alone, or no rewrite is usable;
        ``info`` says which (``skipped``, ``fallback``, ``discarded`` with the reason for each).
        """
        if not history:
            return [question]
        if stands_alone(question):
            info["skipped"] = "the question stands alone"
            info["variants"] = [question]
            return [question]
        shown = history[-_TURNS_SHOWN:]
        conversation = "\n".join(f"Q: {e.question}\nA: {e.answer[:_ANSWER_CHARS]}" for e in shown)
        rewrites = ask_llm(
            self.generator,
            PROMPT.format(n=self.rewrites, conversation=conversation, question=question),
            lambda reply: parse_rewrites(reply, question, self.rewrites),
            info,
            max_new_tokens=self.max_new_tokens,
            stop=("\n\n", "\nLast question:"),
        )
        kept = []
        for rewrite in rewrites or []:
            if why := why_discarded(rewrite, question):
                info.setdefault("discarded", []).append({"rewrite": rewrite, "why": why})
            else:
                kept.append(rewrite)
        variants = list(dict.fromkeys([*kept, question]))  # the user's own words are always searched too
        info["variants"] = variants
        return variants


def parse_rewrites(reply: str, question: str, limit: int) -> list[str]:
    lines = [_QUESTION_LABEL.sub("", _BULLET.sub("", line).strip()).strip().strip('"') for line in reply.splitlines()]
    longest = 3 * words(question) + 20  # a "rewrite" far longer than the question is an answer, not a query
    kept = [line for line in lines if 2 <= words(line) <= longest]
    kept = list(dict.fromkeys(kept))[:limit]
    if not kept:
        raise Malformed(f"expected one standalone question per line, got {reply.strip()[:200]!r}")
    return kept
