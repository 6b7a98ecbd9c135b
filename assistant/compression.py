"""Extractive context compression: the sentences of the retrieved passages that bear on the question.

After RECOMP's extractive compressor (Xu, Shi & Choi, "RECOMP: Improving Retrieval-Augmented LMs with
Compression and Selective Augmentation", 2023), with the index's own embedder as the sentence scorer instead
of a trained one: every sentence of every passage is embedded (with its passage's title, so "It opened in
1932" still says what "it" is), scored by cosine similarity to the question, and the best are kept until a
word budget is spent. Each passage keeps at least its best sentence, in the passage's own order, so the
sources keep their numbers and every citation still points at the passage it came from.

Why: on a CPU, prefill time grows with the prompt, and four full passages cost a 0.5B model most of its
answer time (docs/EVALUATION.md, "Choosing the offline generator"). Fewer words is also less for a small
model to be distracted by. What it costs in answer quality is measured there, not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from assistant.models.base import Embedder
from assistant.support import sentences
from assistant.types import Hit, Trace

GAP = " … "  # joins kept sentences that were not next to each other in the passage


def words(text: str) -> int:
    """Whitespace words: the budget's unit (about 1.3 tokens each for English)."""
    return len(text.split())


class ContextCompressor:
    """Keeps the question-relevant sentences of each hit within ``budget_words`` words in all.

    Args:
        embedder: Scores sentences against the question (cosine of unit vectors).
        budget_words: Words the compressed passages may hold together; at least each passage's best
            sentence is kept even when those alone exceed it.
    """

    def __init__(self, embedder: Embedder, budget_words: int) -> None:
        if budget_words < 1:
            raise ValueError(f"a compression budget needs at least one word, got {budget_words}")
        self.embedder = embedder
        self.budget_words = budget_words

    def compress(self, question: str, hits: Sequence[Hit], trace: Trace | None = None) -> list[Hit]:
        """The hits, in the same order, each with only its kept sentences as text.

        Hits already within the budget together are returned unchanged (nothing is embedded).
        """
        trace = trace if trace is not None else Trace()
        with trace.stage("compress", budget_words=self.budget_words) as info:
            split = [sentences(h.text) or [h.text] for h in hits]
            before = sum(words(h.text) for h in hits)
            info["words_before"] = before
            if before <= self.budget_words:
                info.update(ran=False, words_after=before)
                return list(hits)
            keep = self._choose(question, hits, split)
            out = [replace(h, text=_joined(parts, kept)) for h, parts, kept in zip(hits, split, keep)]
            info.update(
                ran=True,
                words_after=sum(words(h.text) for h in out),
                kept={h.unit_id: f"{len(k)}/{len(parts)}" for h, parts, k in zip(hits, split, keep)},
            )
        return out

    def _choose(self, question: str, hits: Sequence[Hit], split: list[list[str]]) -> list[set[int]]:
        """Indices of the sentences each hit keeps: its best, then the best of all while the budget lasts."""
        flat = [(i, j) for i, parts in enumerate(split) for j in range(len(parts))]
        texts = [f"{(hits[i].title or '').strip()}: {split[i][j]}".lstrip(": ") for i, j in flat]
        vectors = np.vstack([self.embedder.embed_queries([question]), self.embedder.embed(texts)])
        scores = vectors[1:] @ vectors[0]
        ranked = [flat[k] for k in np.argsort(-scores, kind="stable")]
        keep: list[set[int]] = [set() for _ in hits]
        spent = 0
        for i, j in ranked:  # every passage's best sentence first: its number stays meaningful
            if not keep[i]:
                keep[i].add(j)
                spent += words(split[i][j])
        for i, j in ranked:
            cost = words(split[i][j])
            if j not in keep[i] and spent + cost <= self.budget_words:
                keep[i].add(j)
                spent += cost
        return keep


def _joined(parts: list[str], kept: set[int]) -> str:
    """The kept sentences in passage order, with an ellipsis where sentences were left out between them."""
    out, previous = "", None
    for j in sorted(kept):
        if previous is not None:
            out += " " if j == previous + 1 else GAP
        out += parts[j]
        previous = j
    return out
