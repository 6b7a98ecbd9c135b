"""The pipeline a turn runs with given settings, as text: what `tessera config --pipeline` prints, so a
newcomer can follow one question from the prompt to the printed answer. It prints the `Pipeline` object the
assistant runs (built from the settings; building loads no model and opens no store), framed by what a
chat adds around it (memory recall before, remembering the exchange after), and names the steps that are off.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.config import Settings

# Every stage that a setting can leave out, with the setting that puts it in.
_OPTIONAL = {
    "rewrite": "query.rewrite=true",
    "decompose": "query.decompose=rules",
    "hyde": "query.hyde=true",
    "expand": "query.expansion=few-shot (or csqe)",
    "csqe": "query.csqe=true",
    "metadata": "query.metadata=boost",
    "rerank": "retrieval.rerank=20",
    "legs": "retrieval.trace_legs=true",
    "select": "retrieval.adaptive_k=true",
    "compress": "context.budget_words=300",
}


def pipeline_lines(settings: Settings, without: Sequence[str] = ()) -> list[str]:
    """The assistant's pipeline for ``settings`` (less the stages in ``without``), one line per stage."""
    from assistant.assistant import Assistant

    pipeline = Assistant(settings, without=without).pipeline
    memory = settings.memory
    lines = ["A question's way through Tessera: stage, what it does, the fields it reads → writes [module]."]
    if memory.enabled:
        lines.append(f"  -. {'memory recall':<15} {memory.router} units, {memory.recall_k} recalled (chats only)  [memory/memory.py]")
    lines += pipeline.lines()
    if memory.enabled:
        lines.append(f"  -. {'remember':<15} the exchange, into the user's memory (chats only)  [memory/memory.py]")
    off = [f"{name} ({how})" for name, how in _OPTIONAL.items() if name not in pipeline.names]
    if off:
        lines.append("Off: " + "; ".join(off) + ".")
    if without:
        lines.append(f"Taken out (--without): {', '.join(without)}.")
    return lines
