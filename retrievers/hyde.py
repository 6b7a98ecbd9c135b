"""HyDE (Gao et al., "Precise Zero-Shot Dense Retrieval without Relevance Labels").

The generator writes hypothetical passages that answer the query; the dense leg searches with the mean of
their embeddings and the query's own, as the paper does. A hypothetical passage may be wrong in its facts
but looks like the passages that hold the answer, which is what a dense encoder matches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from assistant.models.base import Embedder, Generator
from retrievers.llm_step import Malformed, ask_llm, first_paragraph, words

# The paper's instruction, plus one worked example (a general-knowledge one, from no evaluation set): a base
# model such as the bundled Gemma 270M otherwise starts a new "Question:" instead of writing a passage.
PROMPT = (
    "Please write a passage to answer the question.\n\n"
    "Question: What causes the seasons on Earth?\n"
    "Passage: The seasons are caused by the tilt of Earth's axis, about 23.4 degrees. As Earth orbits the Sun, "
    "each hemisphere leans toward the Sun for part of the year, receiving more direct sunlight and longer "
    "days, which brings summer.\n\n"
    "Question: {query}\nPassage:"
)
# No blank-line stop: small chat models often open with one, which would cut the passage to nothing.
_STOP = ("\nQuestion:",)
_SAMPLING_TEMPERATURE = 0.7  # the paper samples its N passages; greedy decoding would repeat one


class HyDE:
    """Writes hypothetical answer passages and makes the dense query vector from them.

    Args:
        generator: Writes the passages.
        embedder: Embeds them (the embedder the index was built with).
        passages: How many passages to write (greedy for one, sampled for more).
        max_new_tokens: Length limit of each passage.
    """

    def __init__(self, generator: Generator, embedder: Embedder, *, passages: int = 1, max_new_tokens: int = 64) -> None:
        if passages < 1:
            raise ValueError(f"HyDE needs at least one passage, got {passages}")
        self.generator = generator
        self.embedder = embedder
        self.passages = passages
        self.max_new_tokens = max_new_tokens

    def vector(self, query: str, query_vector: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The unit-length mean of the query's embedding and the passages' embeddings.

        Falls back to ``query_vector`` when no usable passage was written (``info`` says why).
        """
        temperature = 0.0 if self.passages == 1 else _SAMPLING_TEMPERATURE
        written = []
        for _ in range(self.passages):
            passage = ask_llm(
                self.generator,
                PROMPT.format(query=query),
                _parse_passage,
                info,
                max_new_tokens=self.max_new_tokens,
                stop=_STOP,
                temperature=temperature,
            )
            if passage is not None:
                written.append(passage)
        info["passages"] = written
        if not written:
            return query_vector
        info.pop("fallback", None)  # at least one passage was usable
        vectors = np.vstack([query_vector[None, :], self.embedder.embed(written)])
        mean = vectors.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


def _parse_passage(reply: str) -> str:
    passage = first_paragraph(reply)
    if words(passage) < 3:
        raise Malformed(f"a passage needs at least 3 words, got {passage!r}")
    return passage
