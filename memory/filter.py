"""The optional LLM filter (MemGAS): the generator drops recalled units that don't bear on the question.

Recall is by similarity, so it brings near-misses; a capable generator can tell which memories matter.
A failed or unusable reply keeps every unit: filtering is an optional refinement, never a failure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from assistant.models.base import Generator
from assistant.types import MemoryUnit

PROMPT = (
    "Here are numbered memories of earlier conversations with the user.\n\n{memories}\n\n"
    "Question: {query}\n"
    "Which memories help answer the question? Reply with their numbers separated by commas, or none.\n"
    "Numbers:"
)


def llm_filter(
    query: str, units: Sequence[MemoryUnit], generator: Generator, info: dict[str, Any], *, max_new_tokens: int = 24
) -> list[MemoryUnit]:
    """The units the generator says bear on ``query``, in their given order (all of them on a bad reply)."""
    from retrievers.llm_step import Malformed, ask_llm  # no heavy deps; one fallback policy for LLM steps

    def parse(reply: str) -> list[int]:
        line = next((x for x in reply.splitlines() if x.strip()), "")  # small models may open with a newline
        numbers = [int(n) for n in re.findall(r"\d+", line) if 1 <= int(n) <= len(units)]
        if not numbers and not re.match(r"\s*none\b", line, re.IGNORECASE):
            raise Malformed(f"expected numbers 1-{len(units)} or 'none', got {reply!r}")
        return numbers

    memories = "\n".join(f"{n}. {' '.join(u.text.split())}" for n, u in enumerate(units, 1))
    chosen = ask_llm(generator, PROMPT.format(memories=memories, query=query), parse, info,
                     max_new_tokens=max_new_tokens, stop=("\n\n",))
    if chosen is None:
        return list(units)
    keep = set(chosen)
    return [u for n, u in enumerate(units, 1) if n in keep]
