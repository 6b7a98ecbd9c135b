"""A chat template from a model file renders like transformers renders it, and only inside a sandbox."""

from __future__ import annotations

import pytest

from assistant.models.base import Message, ModelError
from assistant.models.chat_template import ChatTemplate

CHATML = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def test_renders_chatml_with_generation_prompt() -> None:
    text = ChatTemplate(CHATML).render([Message("system", "Be brief."), Message("user", "Hi?")])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"


def test_special_tokens_and_raise_exception_are_available() -> None:
    template = ChatTemplate(
        "{{ bos_token }}{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}ok",
        bos_token="<s>",
    )
    assert template.render([Message("user", "x")]) == "<s>ok"
    with pytest.raises(ModelError, match="user first"):
        template.render([Message("system", "x")])


def test_a_template_cannot_reach_python_internals() -> None:
    hostile = ChatTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ModelError, match="failed"):
        hostile.render([Message("user", "x")])


def test_invalid_templates_are_model_errors() -> None:
    with pytest.raises(ModelError, match="does not compile"):
        ChatTemplate("{% for %}")
    with pytest.raises(ModelError, match="empty"):
        ChatTemplate("  ")
