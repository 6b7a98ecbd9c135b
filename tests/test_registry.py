from __future__ import annotations

import pytest

from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.models.llama_cpp import LlamaCppGenerator
from assistant.models.local import TransformersGenerator
from assistant.models.openai_compat import OpenAIGenerator
from assistant.models.registry import create_embedder, create_generator, generator_names, register_generator


def test_builtin_names_build_without_loading(settings: Settings) -> None:
    for name in ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        gen = create_generator(settings, name)
        # llama.cpp is the default runtime; nothing is joined, verified or loaded until first use.
        assert isinstance(gen, LlamaCppGenerator) and gen._llama is None and gen.name == name
    assert not (settings.model_cache / "gguf").exists()
    assert isinstance(create_generator(settings, "fake"), FakeGenerator)
    assert isinstance(create_embedder(settings, "fake"), FakeEmbedder)


def test_runtime_setting_selects_transformers(settings: Settings) -> None:
    settings = settings.model_copy(update={"models": settings.models.model_copy(update={"runtime": "transformers"})})
    gen = create_generator(settings, "smollm2-135m")
    assert isinstance(gen, TransformersGenerator) and gen._model is None
    assert gen.gguf_file and gen.gguf_file.endswith(".gguf")


def test_llama_cpp_settings_reach_the_generator(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"models": settings.models.model_copy(update={"threads": 1, "context_tokens": 2048})}
    )
    gen = create_generator(settings, "qwen2.5-coder-0.5b")
    assert isinstance(gen, LlamaCppGenerator) and gen.threads == 1 and gen.context_tokens == 2048


def test_backend_prefixes(settings: Settings) -> None:
    gen = create_generator(settings, "openai:my-model")
    assert isinstance(gen, OpenAIGenerator) and gen.name == "openai:my-model"
    local = create_generator(settings, "transformers:/models/qwen")
    assert isinstance(local, TransformersGenerator) and local.source == "/models/qwen"


def test_unknown_name_lists_choices(settings: Settings) -> None:
    with pytest.raises(ValueError, match="smollm2-135m"):
        create_generator(settings, "gpt-17")
    with pytest.raises(ValueError, match="minilm"):
        create_embedder(settings, "nope")


def test_extensions_register_like_builtins(settings: Settings) -> None:
    @register_generator("echo-test")
    def _echo(_: str, s: Settings) -> FakeGenerator:
        return FakeGenerator(default="echo")

    assert "echo-test" in generator_names()
    assert create_generator(settings, "echo-test").generate([]) == "echo"


def test_transformers_generator_invalid_init(tmp_path) -> None:
    with pytest.raises(ValueError):
        TransformersGenerator("")
    with pytest.raises(ValueError, match="cache_dir"):
        TransformersGenerator("x", gguf_file="m.gguf")
    with pytest.raises(ValueError, match="dtype"):
        TransformersGenerator("x", dtype="float16")
