"""Turning an `Answer` into what the CLI prints: readable text or JSON."""

from __future__ import annotations

from typing import Any

from assistant.types import Answer, Trace, to_dict


def support_notes(answer: Answer) -> list[str]:
    """What every interface shows under an answer about its support (the same truth everywhere).

    An answer with no citation is unverified: the model cited nothing and the support check found no
    source for it. Otherwise each sentence no source supports is listed; and a citation the model did not
    write, but the support check found, is said to be so.
    """
    if answer.abstained:
        return []
    cite = next((s.details for s in reversed(answer.trace.stages) if s.name == "cite"), {})
    remembered = [
        f"From the conversation (session {m['session']}): {' '.join(m['text'].split())}" for m in cite.get("from_memory", [])
    ]
    if not answer.citations and not remembered:
        searched = f" ({len(answer.contexts)} passages searched)" if answer.contexts else ""
        return [f"⚠ Unverified: no source supports this answer{searched}."]
    notes = [*dict.fromkeys(remembered)]
    notes += [f"⚠ Not supported by the sources: {sentence}" for sentence in answer.unsupported]
    for fixed in cite.get("recited", []):
        was = ", ".join(f"[{n}]" for n in fixed["cited"])
        notes.append(f"The model cited {was} for a fact the support check found in [{fixed['found']}].")
    if cite.get("attributed"):
        numbers = ", ".join(f"[{n}]" for n in cite.get("cited", []))
        notes.append(f"The model cited no source; {numbers} was found by the support check.")
    return notes


def answer_text(answer: Answer, *, streamed: bool = False, snippet_chars: int = 200) -> str:
    """The answer (unless it was already streamed), its support notes, then its cited sources."""
    lines = [] if streamed else [answer.text]
    if streamed:
        lines.append("")  # end the streamed line
    lines += support_notes(answer)
    if answer.citations:
        lines.append("")
        lines.append("Sources:")
        for citation in answer.citations:
            snippet = " ".join(citation.hit.text.split())
            if len(snippet) > snippet_chars:
                snippet = snippet[: snippet_chars - 1].rstrip() + "…"
            lines.append(f"[{citation.n}] {citation.hit.location}")
            lines.append(f"    {snippet}")
    elif answer.abstained and answer.contexts:
        lines.append("")
        lines.append(f"(searched {len(answer.contexts)} passages; none held the answer)")
    elif answer.abstained:
        lines.append("(nothing is indexed yet: run `tessera ingest PATH`)")
    return "\n".join(lines)


def answer_json(answer: Answer) -> dict[str, Any]:
    """The `Answer` as JSON-able data, with per-stage timings summarised."""
    data = to_dict(answer)
    data["timings"] = {s.name: round(s.seconds, 4) for s in answer.trace.stages}
    return data


def retrieval_summary(query: str, trace: Trace) -> dict[str, Any]:
    """What retrieval did for a query, read from its trace: the query variants, what each step made
    (HyDE passages, expansions, corpus sentences, fallbacks), every leg's hits, the fused list and timings."""
    steps = {s.name: s.details for s in trace.stages}
    embed = steps.get("embed_query", {})
    return {
        "query": query,
        "variants": list(embed.get("variants", [query])),
        "steps": {name: steps[name] for name in ("rewrite", "hyde", "expand", "csqe") if name in steps},
        "legs": steps.get("legs", {}).get("legs", {}),
        "fused": [h["unit_id"] for h in steps.get("search", {}).get("hits", [])],
        "timings": {s.name: round(s.seconds, 4) for s in trace.stages},
    }
