"""Reranking the first stage's best hits by the local model's relevance judgement, one passage at a time.

No cross-encoder ships its weights on the package index, so the generator judges instead: for each of the
top N hits it reads the question and the passage and is asked whether the passage helps answer it; the
score is the log-odds of "Yes" over "No" at the answer's first token (one prefill per passage, nothing
decoded) — the pointwise relevance-generation reranker of Liang et al. (HELM) and Sachan et al.'s line of
LLM rerankers, with the question first so llama.cpp reuses its cached prefix across the list. Hits beyond
N keep their order after the reranked ones. docs/EVALUATION.md §4 measures what it gains and costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.models.base import Generator, Message
from assistant.models.quoting import quote
from assistant.types import Hit

INSTRUCTION = (
    "You judge search results. Read the question and the passage, then answer with one word: Yes if the "
    "passage contains information that helps answer the question, No if it does not."
)
OPTIONS = ("Yes", "No")
_RRF_K = 60  # as the hybrid search fuses its legs
_PASSAGE_CHARS = 2000  # a passage is ~250 tokens by default; a proposition hit may carry a longer parent


def relevance_messages(question: str, hit: Hit) -> list[Message]:
    """The prompt for one judgement: the question before the passage, so consecutive prompts share a prefix."""
    title = f"Title: {quote(hit.title)}\n" if hit.title else ""
    return [
        Message("system", INSTRUCTION),
        Message(
            "user",
            f"Question: {quote(question)}\n\n{title}Passage: {quote(hit.text[:_PASSAGE_CHARS])}\n\n"
            "Does the passage help answer the question? Answer Yes or No.",
        ),
    ]


class LLMReranker:
    """Reorders the top ``top_n`` hits by the generator's P(Yes) − P(No) in log space.

    Args:
        generator: A local generator (`Generator.next_token_logprobs`); endpoints and fakes without token
            probabilities leave the order as it was, and the trace says so.
        top_n: How many of the first hits to judge.
        order: ``fuse``: reciprocal rank fusion of the first stage's order and the judged one (k = 60), so a
            weak judge moves hits only where it agrees with retrieval or is sure; ``replace``: the judged order
            alone.
    """

    def __init__(self, generator: Generator, top_n: int, order: str = "fuse") -> None:
        if top_n < 2:
            raise ValueError(f"reranking needs at least two hits to reorder, got top_n={top_n}")
        if order not in ("fuse", "replace"):
            raise ValueError(f"order must be 'fuse' or 'replace', got {order!r}")
        self.generator = generator
        self.top_n = top_n
        self.order = order

    def rerank(self, question: str, hits: Sequence[Hit], info: dict[str, Any]) -> list[Hit]:
        """``hits`` with the first ``top_n`` reordered by judged relevance (stable on ties)."""
        head, tail = list(hits[: self.top_n]), list(hits[self.top_n :])
        info.update(model=self.generator.name, judged=len(head))
        scores: list[float] = []
        for hit in head:
            try:
                logprobs = self.generator.next_token_logprobs(relevance_messages(question, hit), OPTIONS)
            except NotImplementedError as exc:
                info["fallback"] = f"first-stage order kept: {exc}"
                return list(hits)
            except Exception as exc:  # noqa: BLE001 - an optional step must never fail the turn; the trace says why
                info["fallback"] = f"first-stage order kept: generator failed: {type(exc).__name__}: {exc}"
                return list(hits)
            scores.append(logprobs["Yes"] - logprobs["No"])
        order = sorted(range(len(head)), key=lambda i: -scores[i])  # sorted() is stable: ties keep rank order
        info["scores"] = {head[i].unit_id: round(scores[i], 3) for i in order}
        if self.order == "fuse":
            judged_rank = {i: r for r, i in enumerate(order)}
            fused = {i: 1 / (_RRF_K + i + 1) + 1 / (_RRF_K + judged_rank[i] + 1) for i in range(len(head))}
            order = sorted(range(len(head)), key=lambda i: -fused[i])
        # Scores stay the first stage's: abstention and adaptive-k read similarities, not judgements.
        return [head[i] for i in order] + tail
