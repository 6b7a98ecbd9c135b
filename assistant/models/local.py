"""Local generators run by `transformers`: a hub id, a folder, or a bundled GGUF file.

GGUF weights are dequantised by transformers on load (15–40 s, ~3 GB peak), so the first load writes the
dequantised model as safetensors into the model cache and later processes load that in seconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.models.base import Generator, Message, ModelError

log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16).

    Measured on this project's machines (DESIGN.md): with them bf16 decodes ~2.5× faster than fp32;
    without them bf16 is emulated and slower, so fp32 is the right choice.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str) -> Any:
    """Maps a settings dtype (``auto``, ``bfloat16``, ``float32``) to a torch dtype."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]


class TransformersGenerator(Generator):
    """A causal LM run in-process, loaded on first use.

    Args:
        source: A Hugging Face hub id or a local folder.
        name: The name reports and traces use.
        gguf_file: A GGUF file name inside ``source`` to load (dequantised) instead of regular weights.
        cache_dir: Where to keep the dequantised copy of a GGUF model (required with ``gguf_file``).
        dtype: ``auto``, ``bfloat16`` or ``float32``.
    """

    def __init__(
        self,
        source: str,
        name: str | None = None,
        *,
        gguf_file: str | None = None,
        cache_dir: Path | None = None,
        dtype: str = "auto",
    ) -> None:
        if not source:
            raise ValueError("source must be a Hugging Face model id or a folder, got an empty string")
        if gguf_file and cache_dir is None:
            raise ValueError("a GGUF model needs cache_dir to keep its dequantised weights")
        if dtype not in ("auto", "bfloat16", "float32"):
            raise ValueError(f"dtype must be auto, bfloat16 or float32, got {dtype!r}")
        self.source = source
        self.name = name or source
        self.gguf_file = gguf_file
        self.cache_dir = cache_dir
        self.dtype = dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------

    def load(self) -> tuple[Any, Any]:
        """Loads (once) and returns ``(model, tokenizer)``."""
        with self._lock:
            if self._model is None:
                self._model, self._tokenizer = self._load()
            return self._model, self._tokenizer

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = resolve_dtype(self.dtype)
        folder = self._converted_folder() if self.gguf_file else None
        if folder is not None and (folder / "model.safetensors").exists():
            source, kwargs = str(folder), {}
        elif self.gguf_file:
            source, kwargs = self.source, {"gguf_file": self.gguf_file}
        else:
            source, kwargs = self.source, {}
        if Path(source).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
        except OSError as exc:
            raise ModelError(
                f"could not load generator {self.name!r} from {source}: {exc}. Give a local folder, a bundled "
                "name (smollm2-135m, gemma3-270m), or a hub id on a machine with a network."
            ) from exc
        model.eval()
        if self.gguf_file and folder is not None and not (folder / "model.safetensors").exists():
            self._save_converted(model, tokenizer, folder)
        return model, tokenizer

    def _converted_folder(self) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / Path(self.gguf_file or self.name).stem

    @staticmethod
    def _save_converted(model: Any, tokenizer: Any, folder: Path) -> None:
        """Writes the dequantised model so the next process skips the GGUF conversion.

        `save_pretrained` refuses a GGUF-loaded model, so the weights go through safetensors directly and
        the config is written without its quantization section. Written to a temporary folder and renamed,
        so an interrupted save never leaves a half model that later loads would trust.
        """
        from safetensors.torch import save_model

        tmp = folder.with_name(folder.name + ".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        save_model(model, str(tmp / "model.safetensors"))
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        tmp.rename(folder)
        log.info("cached dequantised weights in %s", folder)

    # -- attention -------------------------------------------------------------------------------

    def source_attention(self, messages: Sequence[Message], sources: Sequence[str]) -> list[float]:
        """The attention each source's text receives from the generating position (one forward pass).

        Args:
            messages: The chat messages, as they would be sent to `stream`.
            sources: The source blocks, each appearing verbatim in the messages.

        Raises:
            ValueError: A source does not occur in the rendered prompt.
        """
        from assistant.models.attention import source_spans, span_attention

        model, tokenizer = self.load()
        prompt = self.render(messages)
        spans = source_spans(prompt, sources)
        return span_attention(model, tokenizer, prompt, spans, add_special_tokens=not self.has_chat_template)

    # -- generation ------------------------------------------------------------------------------

    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer knows how to format chat messages."""
        return bool(getattr(self.load()[1], "chat_template", None))

    def render(self, messages: Sequence[Message]) -> str:
        """The exact prompt text the model reads: its chat template, or the contents joined plainly."""
        _, tokenizer = self.load()
        if self.has_chat_template:
            return tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in messages],
                tokenize=False,
                add_generation_prompt=True,
            )
        # A base model: the messages read as one document, ending where the answer should start.
        return "\n\n".join(m.content for m in messages)

    def next_token_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> dict[str, float]:
        import torch

        model, tokenizer = self.load()
        inputs = tokenizer(self.render(messages), return_tensors="pt", add_special_tokens=not self.has_chat_template)
        with torch.inference_mode():
            logits = model(**inputs).logits[0, -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        return {o: float(logprobs[tokenizer(o, add_special_tokens=False)["input_ids"][0]]) for o in options}

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        model, tokenizer = self.load()
        prompt = self.render(messages)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=not self.has_chat_template)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "streamer": streamer,
            "do_sample": temperature > 0,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        if temperature > 0:
            options["temperature"] = temperature
        else:
            # Greedy decoding: clear sampling defaults some models ship, which would only warn.
            options.update(temperature=None, top_p=None, top_k=None)
        # Set when the caller stops reading (a stop sequence, a cancel): generation halts at the next token.
        cancelled = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        options["stopping_criteria"] = StoppingCriteriaList([_Cancelled()])
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    model.generate(**inputs, **options)
            except BaseException as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            yield from streamer
        finally:
            cancelled.set()
            worker.join()
        if errors:
            raise ModelError(f"generator {self.name} failed: {errors[0]}") from errors[0]
