"""The one way query steps call the generator: a failed or unusable reply falls back, never fails a turn."""

from __future__ import annotations

from collections.abc import Callable, Sequence
import re
from typing import Any, TypeVar

from assistant.models.base import Generator, Message

T = TypeVar("T")
_LABEL = re.compile(r"^(?:passage|answer|query|rewrites?)\s*:\s*", re.IGNORECASE)


class Malformed(ValueError):
    """A reply the step cannot use; the message says what was wrong with it."""


def ask_llm(
    generator: Generator,
    prompt: str,
    parse: Callable[[str], T],
    info: dict[str, Any],
    *,
    max_new_tokens: int,
    stop: Sequence[str] = (),
    temperature: float = 0.0,
) -> T | None:
    """Sends one user prompt and parses the reply.

    Returns None, with ``info["fallback"]`` saying why, when the generator raises or ``parse`` rejects the
    reply with `Malformed`; the caller then carries on with the step's input. The raw reply is recorded
    in ``info["reply"]`` either way, so the trace shows what the model said.
    """
    try:
        reply = generator.generate(
            [Message("user", prompt)], max_new_tokens=max_new_tokens, temperature=temperature, stop=stop
        )
    except Exception as exc:  # noqa: BLE001 - an optional step must never fail the turn; the trace says why
        info["fallback"] = f"generator failed: {type(exc).__name__}: {exc}"
        return None
    info.setdefault("reply", []).append(reply)
    try:
        return parse(reply)
    except Malformed as exc:
        info["fallback"] = f"malformed reply: {exc}"
        return None


def words(text: str) -> int:
    """Word count, for the minimal-length checks of replies."""
    return len(text.split())


def first_paragraph(reply: str) -> str:
    """The first non-empty paragraph of a reply, without a leading label such as "Passage:" or "Answer:"."""
    for paragraph in reply.strip().split("\n\n"):
        text = _LABEL.sub("", " ".join(paragraph.split()))
        if text:
            return text
    return ""
