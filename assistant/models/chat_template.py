"""Rendering a model's own chat template, read from its GGUF file, in a sandbox.

A chat template is Jinja code that came with a downloaded file: it is rendered in Jinja's
`ImmutableSandboxedEnvironment` (no attribute access to Python internals, no mutation of the values passed
in), with the same options Hugging Face's `apply_chat_template` uses (``trim_blocks``, ``lstrip_blocks``,
loop controls, a ``raise_exception`` helper), so a template renders here as it does in transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from assistant.models.base import Message, ModelError


def _raise(message: str) -> NoReturn:
    raise TemplateError(message)


class ChatTemplate:
    """A compiled chat template.

    Example:
        >>> t = ChatTemplate("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        ...                  "{% if add_generation_prompt %}<assistant>{% endif %}")
        >>> t.render([Message("user", "hi")])
        '<user>hi<assistant>'

    Args:
        source: The template's Jinja source (``tokenizer.chat_template`` in a GGUF header).
        bos_token: The text of the beginning-of-sequence token, for templates that write it.
        eos_token: The text of the end-of-sequence token.

    Raises:
        ModelError: The template is not valid Jinja.
    """

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        if not source.strip():
            raise ModelError("the model file has an empty chat template")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.globals["raise_exception"] = _raise
        try:
            self._template = env.from_string(source)
        except TemplateError as exc:
            raise ModelError(f"the model's chat template does not compile: {exc}") from exc
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True, **extra: Any) -> str:
        """The prompt text for ``messages``, ending where the assistant's reply starts."""
        try:
            return self._template.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
                **extra,
            )
        except TemplateError as exc:
            raise ModelError(f"the model's chat template failed on these messages: {exc}") from exc
