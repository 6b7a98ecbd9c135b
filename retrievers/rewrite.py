"""Conversational multi-query rewriting (Kostric & Balog, "A Surprisingly Simple yet Effective Multi-Query
Rewriting Method for Conversational Passage Retrieval").

A follow-up such as "and when did he die?" cannot be retrieved on its own. The generator rewrites it into
several standalone queries using the conversation; each rewrite is retrieved and the results are fused,
which is more robust than betting on a single rewrite.
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
        """Standalone queries for ``question``; ``[question]`` when there is no history or the reply is bad."""
        if not history:
            return [question]
        shown = history[-_TURNS_SHOWN:]
        conversation = "\n".join(f"Q: {e.question}\nA: {e.answer[:_ANSWER_CHARS]}" for e in shown)
        rewrites = ask_llm(
            self.generator,
            PROMPT.format(n=self.rewrites, conversation=conversation, question=question),
            lambda reply: _parse_rewrites(reply, question, self.rewrites),
            info,
            max_new_tokens=self.max_new_tokens,
            stop=("\n\n", "\nLast question:"),
        )
        variants = rewrites or [question]
        info["variants"] = variants
        return variants


def _parse_rewrites(reply: str, question: str, limit: int) -> list[str]:
    lines = [_BULLET.sub("", line).strip().strip('"') for line in reply.splitlines()]
    longest = 3 * words(question) + 20  # a "rewrite" far longer than the question is an answer, not a query
    kept = [line for line in lines if 2 <= words(line) <= longest]
    kept = list(dict.fromkeys(kept))[:limit]
    if not kept:
        raise Malformed(f"expected one standalone question per line, got {reply.strip()[:200]!r}")
    return kept
