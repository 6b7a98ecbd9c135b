"""Local generators run by llama.cpp (through `llama-cpp-python`): GGUF weights read as they are stored.

Why llama.cpp: on this CPU, torch reads dequantised 16/32-bit weights and its matrix-vector product is
slow, while llama.cpp's kernels read the 4-bit weights directly — 3.5–7× fewer bytes per generated token
(docs/BENCHMARKS.md, "Generator runtimes"). The file is memory-mapped, so loading takes about a second and
two contexts over one file share its pages.

The prompt is rendered here from the chat template stored in the file (`ChatTemplate`, sandboxed) and
tokenised with special tokens parsed; document text cannot smuggle a control token in, because
`assistant.models.quoting.quote` defuses them before they reach the prompt.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.models.base import Generator, Message, ModelError
from assistant.models.chat_template import ChatTemplate
from assistant.models.native_output import quiet_native_output


def default_threads() -> int:
    """Threads for llama.cpp: every core this process may use (llama-cpp-python's default is half)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class LlamaCppGenerator(Generator):
    """A GGUF chat model run by llama.cpp in-process, loaded on first use.

    Args:
        path: The GGUF file, or a callable returning it (so joining a parted file waits for first use).
        name: The name reports and traces use.
        context_tokens: The context window to allocate (prompt plus answer).
        threads: CPU threads; ``None`` uses every available core.

    Raises:
        ValueError: A non-positive ``context_tokens`` or ``threads``.
    """

    def __init__(
        self,
        path: Path | Any,
        name: str,
        *,
        context_tokens: int = 8192,
        threads: int | None = None,
    ) -> None:
        if context_tokens < 256:
            raise ValueError(f"context_tokens must be at least 256, got {context_tokens}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1 (or unset for every core), got {threads}")
        self._path = path
        self.name = name
        self.context_tokens = context_tokens
        self.threads = threads or default_threads()
        self._llama: Any = None
        self._template: ChatTemplate | None = None
        self._attention: Any = None
        self._sliding_window = False
        self._load_lock = threading.Lock()
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time

    @property
    def path(self) -> Path:
        """The GGUF file (joined and verified first, for a parted model)."""
        if callable(self._path):
            self._path = Path(self._path())
        return Path(self._path)

    # -- loading ---------------------------------------------------------------------------------

    def load(self) -> Any:
        """Loads (once) and returns the `llama_cpp.Llama` instance."""
        with self._load_lock:
            if self._llama is None:
                self._llama, self._template = self._load()
                import llama_cpp

                self._sliding_window = llama_cpp.llama_model_n_swa(self._llama.model) > 0
            return self._llama

    @property
    def has_chat_template(self) -> bool:
        """Whether the model file carries a chat template (an instruct model); base models have none."""
        self.load()
        return self._template is not None

    def _load(self) -> tuple[Any, ChatTemplate | None]:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                f"{self.name} runs on llama.cpp, which is not installed: run scripts/setup.sh (it builds "
                "llama-cpp-python for this CPU), or set models.runtime=transformers"
            ) from exc
        path = self.path
        if not path.is_file():
            raise ModelError(f"{self.name}: model file {path} does not exist")
        try:
            with quiet_native_output(), without_amx_weight_buffers():
                llama = Llama(
                    model_path=str(path),
                    n_ctx=self.context_tokens,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    n_batch=512,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp could not load {path}: {exc}") from exc
        # Free it before interpreter shutdown: Llama.__del__ at teardown finds its ctypes globals gone and
        # prints a traceback ("'NoneType' object is not callable") after every command.
        atexit.register(_close, weakref.ref(llama))
        source = llama.metadata.get("tokenizer.chat_template")
        if not source:  # a base model: the prompt is the messages' text (see `render`)
            return llama, None
        template = ChatTemplate(
            source,
            bos_token=_token_text(llama, llama.token_bos()),
            eos_token=_token_text(llama, llama.token_eos()),
        )
        return llama, template

    # -- generation ------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The exact prompt text the model reads: its chat template applied, or (a base model) the contents
        joined plainly, ending where the answer should start."""
        self.load()
        if self._template is None:
            return "\n\n".join(m.content for m in messages)
        return self._template.render(messages)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt, control tokens (``<|im_start|>``) parsed as such; a base model's
        prompt gets its BOS token (a chat template writes its own where the model wants one)."""
        llama = self.load()
        return llama.tokenize(text.encode("utf-8"), add_bos=self._template is None, special=True)

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        llama = self.load()
        tokens = self.tokenize(self.render(messages))
        if len(tokens) + max_new_tokens > self.context_tokens:
            raise ModelError(
                f"{self.name}: the prompt is {len(tokens)} tokens and the answer may take {max_new_tokens}, "
                f"more than the context window of {self.context_tokens}; lower retrieval.top_k or raise "
                "models.context_tokens"
            )
        with self._lock:
            if self._sliding_window:
                # llama-cpp-python reuses the cached prefix of the last prompt; with a sliding-window cache
                # (Gemma 3) that changed greedy answers (a repeated question was answered differently from
                # the first time), so these models read every prompt from the start.
                llama.reset()
            try:
                chunks = llama.create_completion(
                    tokens,
                    max_tokens=max_new_tokens,
                    temperature=temperature,
                    top_k=0 if temperature == 0 else 40,
                    repeat_penalty=1.0,
                    stream=True,
                )
                for chunk in chunks:
                    text = chunk["choices"][0]["text"]
                    if text:
                        yield text
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"generator {self.name} failed: {exc}") from exc

    def next_token_logprobs(self, messages: Sequence[Message], options: Sequence[str]) -> dict[str, float]:
        import numpy as np
        import llama_cpp

        llama = self.load()
        tokens = self.tokenize(self.render(messages))
        first = {option: llama.tokenize(option.encode("utf-8"), add_bos=False, special=False)[0] for option in options}
        with self._lock:
            if self._sliding_window:
                llama.reset()  # see _stream: no prefix reuse with a sliding-window cache
            # Reuse the cached prefix (the instruction and question repeat across a reranked list); at least
            # the last token is evaluated again so that its logits are fresh.
            cached = list(llama.input_ids[: llama.n_tokens])
            shared = 0
            while shared < min(len(cached), len(tokens) - 1) and cached[shared] == tokens[shared]:
                shared += 1
            llama.n_tokens = shared
            try:
                llama.eval(tokens[shared:])
            except (RuntimeError, ValueError) as exc:
                raise ModelError(f"generator {self.name} failed: {exc}") from exc
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(llama.n_vocab(),)
            ).astype(np.float64)
        top = logits.max()
        log_total = top + np.log(np.exp(logits - top).sum())
        return {option: float(logits[token] - log_total) for option, token in first.items()}

    # -- attention -------------------------------------------------------------------------------

    def source_attention(self, messages: Sequence[Message], sources: Sequence[str]) -> list[float]:
        """The attention each source's text receives from the generating position (one prefill).

        Read from llama.cpp's own attention (`assistant.models.llama_attention`) over the same weights
        that answer, in a second context without flash attention.
        """
        from assistant.models.attention import source_spans
        from assistant.models.llama_attention import AttentionReader

        llama = self.load()
        with self._load_lock:
            if self._attention is None:
                self._attention = AttentionReader(llama, self.path, self.context_tokens, self.threads)
        prompt = self.render(messages)
        spans = source_spans(prompt, sources)
        with self._lock:
            return self._attention.span_attention(self.tokenize(prompt), prompt, spans)


_PARAMS_LOCK = threading.Lock()


def amx_in_build() -> bool:
    """Whether this llama.cpp build would put weights in AMX tile buffers (an AMX CPU and a native build)."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


@contextlib.contextmanager
def without_amx_weight_buffers() -> Iterator[None]:
    """Loads models inside with llama.cpp's extra weight buffers off, where the build would use AMX.

    On a 2-core VM whose CPU reports AMX, a native build crashed in its first matrix product (a general
    protection fault on `ldtilecfg` in `ggml_backend_amx_mul_mat`), for every model. Plain buffers run the
    AVX-512 kernels instead. `Llama` has no argument for this, so its default model parameters are wrapped
    while a model loads (under a lock: the wrapper is module state).
    """
    if not amx_in_build():
        yield
        return
    import llama_cpp.llama as llama_module

    low_level = llama_module.llama_cpp
    with _PARAMS_LOCK:
        default = low_level.llama_model_default_params

        def plain_buffers() -> Any:
            params = default()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = plain_buffers
        try:
            yield
        finally:
            low_level.llama_model_default_params = default


def _close(ref: weakref.ref[Any]) -> None:
    if (llama := ref()) is not None:
        llama.close()


def _token_text(llama: Any, token: int) -> str:
    if token < 0:
        return ""
    return llama.detokenize([token], special=True).decode("utf-8", errors="replace")
