"""The pipeline a turn runs with given settings, as numbered lines: what `tessera config --pipeline` prints, so
a newcomer can follow one question from the prompt to the printed answer (each line names the module that
does it and the settings that shape it; a step that is off says so)."""

from __future__ import annotations

from assistant.config import Settings


def _gate_floor(settings: Settings) -> str:
    """The relevance gate's floor: the setting, else the embedder's own (built, not loaded, to read it)."""
    if settings.retrieval.min_relevance is not None:
        return str(settings.retrieval.min_relevance)
    from assistant.models.registry import create_embedder

    try:
        return f"{create_embedder(settings).relevance_floor} ({settings.models.embedder}'s)"
    except Exception:  # noqa: BLE001 - a missing model package: the pipeline still prints
        return "of the embedder"


def pipeline_lines(settings: Settings) -> list[str]:
    """One line per stage, in the order a turn runs them (`Assistant.stream`, `ChatSession.stream`)."""
    s, q, r, c = settings, settings.query, settings.retrieval, settings.context
    llm = q.generator or s.models.generator
    on = lambda flag: "on" if flag else "off"  # noqa: E731
    steps = [
        ("memory recall", "memory/memory.py",
         f"{s.memory.router} units, {s.memory.recall_k} recalled" if s.memory.enabled else "off (memory.enabled)"),
        ("rewrite a follow-up", "retrievers/rewrite.py", f"{on(q.rewrite)}, {q.rewrites} rewrites by {llm}, only with a conversation"),
        ("decompose a multi-part question", "retrievers/decompose.py", q.decompose),
        ("embed the query", "assistant/models", s.models.embedder),
        ("HyDE", "retrievers/hyde.py", f"on, {q.hyde_passages} passage(s) by {llm}" if q.hyde else "off"),
        ("LLM query expansion", "retrievers/expansion.py", f"{q.expansion}" + (f" by {llm}" if q.expansion != "off" else "")),
        ("corpus-steered expansion (CSQE)", "retrievers/csqe.py", on(q.csqe)),
        ("sources and dates named", "retrievers/query_analysis.py", q.metadata),
        ("search", "retrievers/hybrid.py + store.py",
         f"{r.mode}, fusion {r.fusion}, unit {r.unit}, {r.candidates} candidates per leg"),
        ("title links (second hop)", "retrievers/links.py", f"from the top {r.links} document(s)" if r.links else "off"),
        ("diversity across documents", "retrievers/hybrid.py",
         f"at most {r.max_per_document} passage(s) per document first" if r.max_per_document else "off"),
        ("rerank by the model's judgement", "retrievers/rerank.py", f"top {r.rerank} by {llm}" if r.rerank else "off"),
        ("select", "assistant/selection.py", f"adaptive-k, at least {r.min_k}, at most {r.top_k}" if r.adaptive_k else f"top {r.top_k}"),
        ("relevance gate", "assistant/assistant.py", f"abstain below cosine {_gate_floor(s)}"),
        ("compress", "assistant/compression.py", f"{c.budget_words} words" if c.budget_words else "off (whole passages)"),
        ("order the context", "assistant/ordering.py",
         c.order + (f", {c.sort_rounds} round(s)" if c.order == "attention" else "")),
        ("generate", f"assistant/models ({s.models.runtime})", f"{s.models.generator}, up to {s.models.max_new_tokens} tokens"),
        ("support check and citations", "assistant/support.py + citations.py", f"unsupported answers: {s.answer.unsupported}"),
        ("remember the exchange", "memory/memory.py", "on" if s.memory.enabled else "off"),
    ]
    return [f"{n:2d}. {name:<34} {what}  [{where}]" for n, (name, where, what) in enumerate(steps, 1)]
