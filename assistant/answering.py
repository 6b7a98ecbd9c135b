"""The answer's rules: what counts as an abstention, and how generated text becomes a cited `Answer`
(support checked sentence by sentence, citations fixed or added, the conversation as evidence)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from assistant.citations import cited_numbers, citations_for, recite, strip_invalid, strip_markers
from assistant.models.base import Generator
from assistant.prompts import ABSTAIN_TEXT, clean_answer
from assistant.support import Support, SupportChecker
from assistant.types import Answer, Hit, MemoryUnit, Trace


# Ways a model says the sources don't hold the answer (ours, and common paraphrases of it).
_ABSTAIN = re.compile(
    r"documents? (do not|don't|does not|doesn't) (say|mention|contain)|"
    r"(sources?|context|passages?) (do not|don't|does not|doesn't) (say|mention|contain)|"
    r"\b(cannot|can't|unable to) (be )?(answer|determine|find)|no information|not (mentioned|provided|stated)|"
    r"\b(i|we) (do not|don't) know\b",
    re.IGNORECASE,
)


# What is left of an answer once its citation markers and punctuation are gone; empty means no answer.
_MARKERS_ONLY = re.compile(r"\[\s*\d+\s*\]|[\W_]+")


def is_abstention(text: str) -> bool:
    """True when a generated answer declines to answer, is empty, or is only citation markers ("[1]")."""
    return not _MARKERS_ONLY.sub("", text) or bool(_ABSTAIN.search(text))


def unquote_header(text: str, hits: Sequence[Hit]) -> str:
    """An answer that starts by copying a source's header (``[2] Oxygen: ...``, the prompt's own layout)
    keeps the text and cites that source at the end instead: ``... [2]``."""
    match = re.match(r"\s*\[(\d+)\]\s*", text)
    if not match or not 1 <= int(match.group(1)) <= len(hits):
        return text
    n = int(match.group(1))
    rest = text[match.end() :]
    title = (hits[n - 1].title or hits[n - 1].location).strip()
    if title and rest.lower().startswith(title.lower() + ":"):
        rest = rest[len(title) + 1 :].strip()
    return f"{rest.rstrip()} [{n}]" if rest.strip() else text


def finish_answer(
    raw: str,
    hits: list[Hit],
    trace: Trace,
    *,
    question: str = "",
    checker: SupportChecker | None = None,
    on_unsupported: str = "warn",
    recalled: Sequence[MemoryUnit] = (),
) -> Answer:
    """Turns generated text into an `Answer`: abstention detected, citations checked, support measured.

    Every sentence is checked against the sources it cites (uncited: against all of them) by
    `SupportChecker`. A citation the model did not write is added only where that check finds the source,
    never from word overlap alone; an answer nothing supports stays uncited and is shown as unverified.
    A sentence no document supports but a ``recalled`` memory unit does rests on the conversation: it is
    not flagged, and the trace names the session it came from. When the main claim (the first sentence)
    is unsupported, ``on_unsupported="abstain"`` answers "The documents don't say." instead (the trace
    keeps the withheld text); ``"warn"`` keeps the answer with its unsupported sentences listed.
    """
    checker = checker or SupportChecker()
    with trace.stage("cite") as info:
        if is_abstention(raw):
            info["abstained"] = True
            return Answer(ABSTAIN_TEXT, (), tuple(hits), True, trace)
        text, dropped = strip_invalid(unquote_header(clean_answer(raw), hits), len(hits))
        numbers = cited_numbers(text)
        verdicts = checker.check(text, hits, question)
        # A fact the model read in one source and numbered as another cites the source that holds it.
        recited = [v for v in verdicts if v.supported and v.cited and v.source not in v.cited]
        for v in recited:
            text = text.replace(v.sentence, recite(v.sentence, v.source), 1)
        if recited:
            numbers = cited_numbers(text)
            info["recited"] = [{"sentence": v.sentence, "cited": list(v.cited), "found": v.source} for v in recited]
        info.update(dropped=dropped, cited=numbers, attributed=False)
        main = verdicts[0] if verdicts else None
        if not numbers and main is not None and main.supported and main.source is not None:
            text, numbers = f"{text} [{main.source}]", [main.source]
            info.update(cited=numbers, attributed=True)
        verdicts, from_memory = _rest_on_memory(verdicts, recalled, checker, question)
        if from_memory:
            info["from_memory"] = from_memory
        main = verdicts[0] if verdicts else None
        unsupported = [v.sentence for v in verdicts if not v.supported]
        info["support"] = [
            {"sentence": v.sentence, "source": v.source, "coverage": round(v.coverage, 2), "missing": list(v.missing), "supported": v.supported}
            for v in verdicts
        ]
        info.update(supported=(bool(numbers) or bool(from_memory)) and not unsupported, unsupported=unsupported)
        if main is not None and not main.supported and on_unsupported == "abstain":
            info.update(abstained="unsupported", withheld=text)
            return Answer(ABSTAIN_TEXT, (), tuple(hits), True, trace)
    return Answer(text, citations_for(numbers, hits), tuple(hits), False, trace, tuple(unsupported))


def _rest_on_memory(
    verdicts: list[Support], recalled: Sequence[MemoryUnit], checker: SupportChecker, question: str
) -> tuple[list[Support], list[dict[str, str]]]:
    """Sentences no document supports, checked against the recalled conversation: those it supports are
    marked supported, and where they came from is returned for the trace and the interfaces.

    Only what the user said is evidence. The assistant's own earlier replies are not: an unverified answer
    recalled next time would otherwise vouch for itself ("From the conversation") and pass as supported.
    """
    remembered = [Hit(u.id, users_words(u.text), 1.0, f"session {u.session_id}", u.id, u.session_id) for u in recalled]
    if not remembered:
        return verdicts, []
    given = checker.premises(question)
    out, found = [], []
    for v in verdicts:
        check = None if v.supported else checker.check_sentence(strip_markers(v.sentence), remembered, given)
        if check is not None and check.supported and check.source is not None:
            unit = recalled[check.source - 1]
            found.append({"sentence": v.sentence, "session": unit.session_id, "unit": unit.id, "text": unit.text[:300]})
            v = replace(v, supported=True)
        out.append(v)
    return out, found


_ASSISTANT_PART = re.compile(r"(?:^|\n)Assistant:.*?(?=\nUser:|\Z)", re.DOTALL)


def users_words(text: str) -> str:
    """A memory unit's text without the assistant's replies (``User: … / Assistant: …`` turns)."""
    return _ASSISTANT_PART.sub("", text).strip()


def needs_example(generator: Generator) -> bool:
    """Base models (no chat template) get a worked example in the prompt; instruct models don't."""
    return not getattr(generator, "has_chat_template", True)
