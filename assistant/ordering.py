"""Ordering the sources in the prompt: attention sorting, or a fixed order.

Attention sorting (Peysakhovich & Lerer): a long-context model favours what sits near the question. One
forward pass over the prompt measures the attention each source receives from the generating position;
the sources are re-sorted so the most attended sits last, nearest the question; this repeats for
``sort_rounds`` rounds (a re-sorted prompt gets re-measured), then the answer is generated.

Local generators report attention — transformers through a recording attention function
(`assistant.models.attention`), llama.cpp from its compute graph (`assistant.models.llama_attention`).
Generators that cannot (endpoints) get "highest retrieval score last" instead, and the trace says which
ordering ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

from assistant.models.base import Message
from assistant.types import Hit, Trace

Order = Literal["attention", "retrieval", "reversed"]


@runtime_checkable
class AttentionScorer(Protocol):
    """A generator that can say how much attention each source in a prompt receives."""

    def source_attention(self, messages: Sequence[Message], sources: Sequence[str]) -> list[float]: ...


class ContextOrderer:
    """Puts the retrieved hits in the order the generator will read them.

    Args:
        order: ``attention`` (attention sorting, falling back to best-last), ``retrieval`` (best first, as
            retrieved) or ``reversed`` (best last).
        rounds: Attention-sorting rounds.
    """

    def __init__(self, order: Order = "attention", rounds: int = 1) -> None:
        if order not in ("attention", "retrieval", "reversed"):
            raise ValueError(f"unknown context order {order!r}; expected attention, retrieval or reversed")
        if rounds < 1:
            raise ValueError(f"attention sorting needs at least one round, got {rounds}")
        self.order = order
        self.rounds = rounds

    def arrange(
        self,
        hits: Sequence[Hit],
        generator: object,
        prompt_for: Callable[[Sequence[Hit]], tuple[list[Message], list[str]]],
        trace: Trace,
    ) -> list[Hit]:
        """The hits in prompt order.

        Args:
            hits: The hits, best first.
            generator: The answering generator (attention sorting needs `AttentionScorer`).
            prompt_for: Builds the messages for an ordering and returns them with each source's block text.
            trace: Records the ordering that ran, its rounds' scores and its time.
        """
        ordered = list(hits)
        with trace.stage("order", requested=self.order) as info:
            if self.order == "retrieval" or len(ordered) < 2:
                info["ran"] = "retrieval"
            elif self.order == "reversed" or not isinstance(generator, AttentionScorer):
                ordered.reverse()
                info["ran"] = "score-last"
                if self.order == "attention":
                    info["why"] = "the generator cannot report attention (not a local transformers or llama.cpp model)"
            else:
                info["ran"] = "attention"
                info["rounds"] = []
                try:
                    for _ in range(self.rounds):
                        messages, blocks = prompt_for(ordered)
                        scores = generator.source_attention(messages, blocks)
                        info["rounds"].append({h.unit_id: round(s, 5) for h, s in zip(ordered, scores)})
                        # Stable ascending sort: the most attended goes last; ties keep their current order.
                        ordered = [h for _, h in sorted(zip(scores, ordered), key=lambda pair: pair[0])]
                except Exception as exc:  # noqa: BLE001 - like the query steps: fall back, say why
                    ordered = list(reversed(hits))
                    info.update(ran="score-last", fallback=f"attention sorting failed: {type(exc).__name__}: {exc}")
            info["order"] = [h.unit_id for h in ordered]
        return ordered
