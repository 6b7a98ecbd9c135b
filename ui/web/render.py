"""HTML for the web app's panels: cited sources with highlights, the "why this answer" trace, ingest results.

Pure functions of `Answer`/`Trace`/reports; every piece of document or model text is HTML-escaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from assistant.render import retrieval_summary, support_notes
from assistant.types import Answer, Hit

_STOPWORDS = frozenset(
    "the and for are was were with that this from its into than then there their they them what which who whom "
    "when where why how not but has have had all any can could would should will does did our your you his her "
    "she him one also about over such only more most other some these those very just".split()
)
_MARKER = re.compile(r"\[\d+\]")
_BREAK = re.compile(r"(?<=[.!?])\s+|\n\s*")
_BLOCK_START = re.compile(r"#|[-*+] |\d+[.)] ")


def _sentence_breaks(text: str) -> list[re.Match[str]]:
    """Where sentences end: after ``.!?``, at blank lines, around headings and before list items, but not
    at the single line breaks of hard-wrapped paragraphs."""
    breaks = []
    for m in _BREAK.finditer(text):
        if m.group()[0] == "\n" and m.group().count("\n") == 1:
            line = text[text.rfind("\n", 0, m.start()) + 1 : m.start()]
            if not line.lstrip().startswith("#") and not _BLOCK_START.match(text, m.end()):
                continue
        breaks.append(m)
    return breaks


def content_words(text: str) -> set[str]:
    """Lowercased words that carry content: no stopwords, no ``[n]`` markers, 3+ letters or any number."""
    words = re.findall(r"\w+", _MARKER.sub(" ", text).lower())
    return {w for w in words if w not in _STOPWORDS and (len(w) >= 3 or w.isdigit())}


def cited_text(answer_text: str, n: int) -> str:
    """The sentences of the answer that carry the marker ``[n]`` (the whole answer if none does)."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", answer_text) if f"[{n}]" in s]
    return " ".join(sentences) or answer_text


def highlight_passage(passage: str, reference: str, *, min_shared: int = 2) -> str:
    """The passage as escaped HTML with ``<mark>`` around the sentences that ``reference`` draws on.

    A sentence is marked when it shares at least ``min_shared`` content words with the reference (all of
    them, when the reference has fewer) and at least half as many as the best-matching sentence does.
    """
    wanted = content_words(reference)
    pieces: list[tuple[str, str]] = []  # (sentence, the separator after it)
    position = 0
    for separator in [*_sentence_breaks(passage), None]:
        end = separator.start() if separator else len(passage)
        pieces.append((passage[position:end], separator.group() if separator else ""))
        position = separator.end() if separator else position
    shared = [len(content_words(sentence) & wanted) for sentence, _ in pieces]
    need = max(1, min(min_shared, len(wanted)), (max(shared, default=0) + 1) // 2)
    return "".join(
        (f"<mark>{escape(sentence)}</mark>" if wanted and n >= need else escape(sentence)) + escape(after)
        for (sentence, after), n in zip(pieces, shared)
    )


def source_choices(answer: Answer | None) -> list[tuple[str, int]]:
    """``("[n] file § heading", n)`` for each cited source: the choices of the sources picker."""
    return [(f"[{c.n}] {c.hit.location}", c.n) for c in answer.citations] if answer else []


def sources_html(answer: Answer | None, selected: int | None = None) -> str:
    """The cited sources of an answer: one line each, and the selected one's passage with the cited text marked."""
    if answer is None:
        return '<p class="hint">Ask a question: the passages its answer cites appear here.</p>'
    notes = support_notes(answer)
    warnings = "".join(f"<li>{escape(note)}</li>" for note in notes)
    warning_html = f'<div class="unsupported"><ul>{warnings}</ul></div>' if notes else ""
    if not answer.citations:
        if not answer.abstained:  # an answer nothing supports is a warning, never worded like an abstention
            return warning_html
        why = (
            f"searched {len(answer.contexts)} passages; none held the answer"
            if answer.contexts
            else "nothing is indexed yet: add documents below"
        )
        return f'<p class="hint">No sources cited ({escape(why)}).</p>'
    selected = selected if selected in {c.n for c in answer.citations} else answer.citations[0].n
    parts = []
    for citation in answer.citations:
        hit = citation.hit
        head = f'<div class="src-head"><b>[{citation.n}]</b> {escape(hit.location)}</div>'
        if citation.n == selected:
            body = highlight_passage(hit.text, cited_text(answer.text, citation.n))
            parts.append(
                f'<div class="source selected" data-n="{citation.n}">{head}'
                f'<div class="src-meta">{escape(hit.title)} · {escape(hit.source)}</div>'
                f'<div class="passage">{body}</div></div>'
            )
        else:
            parts.append(f'<div class="source" data-n="{citation.n}">{head}</div>')
    return warning_html + "".join(parts)


def status_html(turn: int, answer: Answer | None = None, *, failed: bool = False) -> str:
    """The line under the chat: "Answering…" while turn ``turn`` streams, then its time and sources cited.

    A finished turn carries ``data-done="<turn>"``, which tests and the screenshot script wait for.
    """
    if answer is None and not failed:
        return '<span class="status">Answering…</span>'
    if failed:
        text = "⚠ The answer failed (the message above says why)."
    elif answer.abstained:
        text = f"The documents don't hold the answer ({sum(s.seconds for s in answer.trace.stages):.1f} s)."
    else:
        cited = len(answer.citations)
        seconds = sum(s.seconds for s in answer.trace.stages)
        support = f"{cited} source{'s' if cited != 1 else ''} cited" if cited else "⚠ unverified: no source supports it"
        if cited and answer.unsupported:
            support += f" · ⚠ {len(answer.unsupported)} sentence{'s' if len(answer.unsupported) != 1 else ''} unsupported"
        text = f"Answered in {seconds:.1f} s · {support}."
    return f'<span class="status" data-done="{turn}">{escape(text)}</span>'


def _label(unit_id: str, hits: dict[str, tuple[int, Hit]]) -> str:
    if unit_id in hits:
        n, hit = hits[unit_id]
        return f"[{n}] {escape(hit.location)} <code>{escape(unit_id)}</code>"
    return f"<code>{escape(unit_id)}</code>"


def _items(values: Sequence[Any], ordered: bool = False) -> str:
    tag = "ol" if ordered else "ul"
    return f"<{tag}>" + "".join(f"<li>{v}</li>" for v in values) + f"</{tag}>"


def trace_html(question: str, answer: Answer | None) -> str:
    """"Why this answer": query variants, what HyDE and expansion wrote, each leg's and the fused hits, the
    order attention sorting chose, the relevance gate, and a timings table."""
    if answer is None:
        return '<p class="hint">The trace of the latest answer appears here.</p>'
    summary = retrieval_summary(question, answer.trace)
    details = {s.name: s.details for s in answer.trace.stages}
    shown = {h.unit_id: (i, h) for i, h in enumerate(answer.contexts, 1)}
    out = ["<h4>Query variants</h4>", _items([escape(v) for v in summary["variants"]])]
    steps = summary["steps"]
    if "hyde" in steps:
        passages = steps["hyde"].get("passages") or []
        out.append("<h4>HyDE passage</h4>" + "".join(f"<blockquote>{escape(p)}</blockquote>" for p in passages))
        if steps["hyde"].get("fallback"):
            out.append(f'<p class="hint">HyDE fell back: {escape(steps["hyde"]["fallback"])}</p>')
    if "expand" in steps:
        step = steps["expand"]
        text = escape(step.get("expansion") or "") or "<i>(none)</i>"
        out.append(f"<h4>Expansion ({escape(str(step.get('style', '')))})</h4><blockquote>{text}</blockquote>")
        if step.get("fallback"):
            out.append(f'<p class="hint">Expansion fell back: {escape(step["fallback"])}</p>')
    if "csqe" in steps:
        chosen = steps["csqe"].get("selected") or []
        out.append("<h4>Corpus-steered sentences</h4>" + _items([escape(str(s)) for s in chosen]))
    if summary["legs"]:
        rows = "".join(
            f"<tr><td>{escape(name)}</td><td>{', '.join(_label(u, shown) for u in ids[:5])}</td></tr>"
            for name, ids in summary["legs"].items()
        )
        out.append(f"<h4>Search legs (top 5 each)</h4><table>{rows}</table>")
    fused = details.get("search", {}).get("hits", [])
    out.append(f"<h4>Fused hits ({escape(str(details.get('search', {}).get('mode', '')))})</h4>")
    out.append(
        _items([f"{_label(h['unit_id'], shown)} score {h['score']} · dense {h['dense_score']}" for h in fused], True)
        if fused
        else '<p class="hint">no hits</p>'
    )
    if "order" in details:
        order = details["order"]
        why = f" ({escape(order['why'])})" if order.get("why") else ""
        out.append(f"<h4>Context order: {escape(str(order.get('ran', '')))}{why}</h4>")
        out.append(_items([_label(u, shown) for u in order.get("order", [])], True))
        for i, scores in enumerate(order.get("rounds", []), 1):
            cells = ", ".join(f"{_label(u, shown)} {s}" for u, s in scores.items())
            out.append(f"<p>attention round {i}: {cells}</p>")
    recalled = details.get("memory", {}).get("recalled", [])
    if recalled:
        out.append("<h4>Recalled from the conversation</h4>")
        out.append(
            _items([f"session {escape(str(m['session']))} · {escape(m['granularity'])} · similarity {m['score']}: "
                    f"{escape(m['text'])}" for m in recalled])
        )
    if "relevance_gate" in details:
        gate = details["relevance_gate"]
        memory = f"; {gate['memory_relevant']} relevant memories" if gate.get("memory_relevant") else ""
        out.append(
            f"<p>Relevance gate: best dense score {gate.get('best_dense_score')} vs "
            f"{gate.get('min_relevance')}{memory}: {'passed' if gate.get('passed') else 'abstained'}</p>"
        )
    rows = "".join(
        f"<tr><td>{escape(s.name)}</td><td>{s.seconds * 1000:.1f} ms</td></tr>" for s in answer.trace.stages
    )
    total = sum(s.seconds for s in answer.trace.stages) * 1000
    out.append(f'<h4>Timings</h4><table class="timings">{rows}<tr><th>total</th><th>{total:.1f} ms</th></tr></table>')
    return "".join(out)


def ingest_html(report: Any | None, refused: Sequence[tuple[str, str]] = ()) -> str:
    """The result of an upload: ingested / unchanged / failed (with reasons), and refused uploads."""
    lines = []
    if report is not None:
        lines.append(
            f"<b>Ingested {len(report.ingested)}</b> ({report.passages} passages, {report.propositions} "
            f"propositions) · unchanged {len(report.unchanged)} · failed {len(report.failed)}"
        )
        names = [Path(p).name for p in report.ingested]
        if names:
            lines.append("Added: " + ", ".join(escape(n) for n in names))
    failures = [(Path(p).name, why) for p, why in (report.failed if report else [])] + list(refused)
    items = "".join(f"<li>{escape(name)}: {escape(why)}</li>" for name, why in failures)
    if items:
        lines.append(f'<ul class="failed">{items}</ul>')
    return '<div class="ingest">' + "<br>".join(lines) + "</div>"


DOCUMENT_HEADERS = ["document", "passages", "facts", "added"]


def document_rows(records: Sequence[Any]) -> list[list[Any]]:
    """Rows of the documents table: the file name (its folder as a tooltip), passages, propositions ("facts"),
    the day it was added. Short cells, so nothing breaks mid-word on a narrow column."""
    return [
        [
            f'<span title="{escape(str(Path(r.source).parent))}">{escape(Path(r.source).name or r.source)}</span>',
            r.passages,
            r.propositions,
            datetime.fromtimestamp(r.ingested_at).strftime("%b %d"),
        ]
        for r in records
    ]


def document_choices(records: Sequence[Any]) -> list[tuple[str, str]]:
    """The delete picker's choices: the file name shown, the full path as the value (names may repeat)."""
    names = [Path(r.source).name or r.source for r in records]
    return [(name if names.count(name) == 1 else r.source, r.source) for name, r in zip(names, records)]
