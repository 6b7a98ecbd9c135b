"""LLM query expansion (Jagerman et al., "Query Expansion by Prompting Large Language Models").

The generator writes text related to the query (a pseudo-document, or a chain-of-thought answer); the
BM25 leg searches with the query repeated ``query_repeats`` times plus that text, so the original terms
keep their weight while the expansion adds vocabulary the relevant passages may use.
"""

from __future__ import annotations

from typing import Any, Literal

from assistant.models.base import Generator
from retrievers.llm_step import Malformed, ask_llm, words

Style = Literal["zero-shot", "few-shot", "cot"]

# The paper's Q2D (query-to-document) prompts, and its chain-of-thought prompt.
ZERO_SHOT = "Write a passage that answers the following query: {query}"
# Hand-written examples on general topics (none from an evaluation set).
FEW_SHOT = (
    "Write a passage that answers the given query.\n\n"
    "Query: what causes the seasons on earth\n"
    "Passage: The seasons are caused by the tilt of Earth's axis, about 23.4 degrees. As Earth orbits the "
    "Sun, each hemisphere leans toward the Sun for part of the year, receiving more direct sunlight and "
    "longer days, which brings summer.\n\n"
    "Query: who designed the eiffel tower\n"
    "Passage: The Eiffel Tower was designed by engineers Maurice Koechlin and Émile Nouguier of Gustave "
    "Eiffel's company, with architect Stephen Sauvestre. It was built for the 1889 World's Fair in Paris.\n\n"
    "Query: {query}\n"
    "Passage:"
)
COT = "Answer the following query: {query}\nGive the rationale before answering."
PROMPTS: dict[str, str] = {"zero-shot": ZERO_SHOT, "few-shot": FEW_SHOT, "cot": COT}
_STOP = ("\nQuery:", "\n\n\n")


class LLMExpander:
    """Writes the expansion text for a query.

    Args:
        generator: Writes the expansion.
        style: ``zero-shot`` or ``few-shot`` pseudo-documents, or ``cot`` (rationale and answer).
        max_new_tokens: Length limit of the expansion.
    """

    def __init__(self, generator: Generator, *, style: Style = "zero-shot", max_new_tokens: int = 64) -> None:
        if style not in PROMPTS:
            raise ValueError(f"unknown expansion style {style!r}; expected one of {', '.join(PROMPTS)}")
        self.generator = generator
        self.style = style
        self.max_new_tokens = max_new_tokens

    def expand(self, query: str, info: dict[str, Any]) -> str:
        """The expansion text, or ``""`` when the reply was unusable (``info`` says why)."""
        info["style"] = self.style
        text = ask_llm(
            self.generator,
            PROMPTS[self.style].format(query=query),
            _parse_expansion,
            info,
            max_new_tokens=self.max_new_tokens,
            stop=_STOP,
        )
        info["expansion"] = text or ""
        return text or ""


def _parse_expansion(reply: str) -> str:
    text = " ".join(reply.split())
    if words(text) < 3:
        raise Malformed(f"an expansion needs at least 3 words, got {text!r}")
    return text
