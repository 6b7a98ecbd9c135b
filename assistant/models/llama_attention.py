"""Attention sorting's measurement on llama.cpp: the attention row of the last prompt token, read from the graph.

llama.cpp does not report attention weights, but it names every tensor of its compute graph and calls an
evaluation callback (`cb_eval`) for each one it is about to compute. Without flash attention, each layer
has a ``kq_soft_max-<layer>`` tensor: the softmax of queries against keys, shape ``[n_kv, n_tokens,
n_head]`` (ggml lists the fastest dimension first). The reader runs one prefill of the prompt in a
context of its own (the answering context keeps its KV cache) and copies the last token's row of that
tensor for every layer: the same quantity `assistant.models.attention` computes for transformers —
attention from the position that generates next, averaged over heads and layers, summed over a source's
tokens — from the same 4-bit weights that then write the answer.

The tensor struct is read with ctypes (its layout, ``struct ggml_tensor`` in ggml.h, has been stable
across llama.cpp releases; `_check_layout` compares a known tensor on first use), and the data pointer is
host memory because this context runs on the CPU backend.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.models.base import ModelError
from assistant.models.native_output import quiet_native_output

_MAX_DIMS, _MAX_OP_PARAMS, _MAX_SRC, _MAX_NAME = 4, 64, 10, 64
_GGML_TYPE_F32 = 0
_PREFIX = b"kq_soft_max-"


class _GgmlTensor(ctypes.Structure):
    """``struct ggml_tensor`` (ggml/include/ggml.h), the fields this module reads and those before them."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * _MAX_DIMS),
        ("nb", ctypes.c_size_t * _MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * _MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * _MAX_NAME),
    ]


def attention_layers(architecture: str, n_layer: int) -> list[int]:
    """Layers whose attention spans the whole prompt.

    Gemma 3 alternates five sliding-window layers (window 512) with one global layer (llama.cpp's
    ``load_swa_pattern(ml, 6)``); a sliding layer cannot see an early source in a long prompt, so only the
    global ones count. Other architectures here (qwen2, llama) attend globally in every layer.
    """
    if architecture == "gemma3":
        return [i for i in range(n_layer) if i % 6 == 5]
    return list(range(n_layer))


class AttentionReader:
    """Measures, in a second llama.cpp context over the same model, the attention of the last prompt token.

    Args:
        llama: The answering `llama_cpp.Llama` (its loaded model is shared, not loaded again).
        path: The model file (for messages).
        context_tokens: Context size of the measuring context.
        threads: CPU threads.
    """

    def __init__(self, llama: Any, path: Path, context_tokens: int, threads: int) -> None:
        import llama_cpp

        self._llama = llama
        self._lib = llama_cpp
        self.path = path
        self.n_layer = int(llama_cpp.llama_model_n_layer(llama.model))
        architecture = str(llama.metadata.get("general.architecture", ""))
        self.layers = set(attention_layers(architecture, self.n_layer))
        self._rows: dict[int, np.ndarray] = {}
        self._recording = False
        # Kept on self: ctypes must not free the callback while llama.cpp holds its pointer.
        self._callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = context_tokens
        params.n_batch = params.n_ubatch = 512
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # flash attention has no kq tensor
        params.cb_eval = self._callback
        params.cb_eval_user_data = None
        params.no_perf = True
        with quiet_native_output():
            self._ctx = llama_cpp.llama_init_from_model(llama.model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not create a context to measure attention for {path}")
        self.context_tokens = context_tokens

    def close(self) -> None:
        if self._ctx:
            self._lib.llama_free(self._ctx)
            self._ctx = None

    def __del__(self) -> None:
        self.close()

    def _on_tensor(self, tensor: int, ask: bool, _: int) -> bool:
        t = ctypes.cast(tensor, ctypes.POINTER(_GgmlTensor)).contents
        name = t.name
        if not (self._recording and name.startswith(_PREFIX)):
            return not ask  # ask: "do you want this tensor?" no; otherwise: "go on computing" yes
        layer = int(name[len(_PREFIX) :])
        if layer not in self.layers:
            return not ask
        if ask:
            return True
        if t.type != _GGML_TYPE_F32:
            return True
        n_kv, n_tokens, n_head = t.ne[0], t.ne[1], t.ne[2]
        # Row n_tokens-1 of every head: the last token of this batch, which after the final batch is the
        # prompt's last token.
        base = t.data + (n_tokens - 1) * t.nb[1]
        rows = np.empty((n_head, n_kv), dtype=np.float32)
        for h in range(n_head):
            ctypes.memmove(rows[h].ctypes.data, base + h * t.nb[2], n_kv * 4)
        self._rows[layer] = rows
        return True

    def last_token_attention(self, tokens: Sequence[int]) -> np.ndarray:
        """Attention from the last token to every position, mean over heads and full-attention layers."""
        if not tokens:
            raise ValueError("cannot measure attention over an empty prompt")
        if len(tokens) > self.context_tokens:
            raise ModelError(
                f"the prompt is {len(tokens)} tokens, more than the context window of {self.context_tokens}; "
                "lower retrieval.top_k or raise models.context_tokens"
            )
        lib = self._lib
        lib.llama_memory_clear(lib.llama_get_memory(self._ctx), True)
        self._rows.clear()
        self._recording = True
        try:
            for start in range(0, len(tokens), 512):
                chunk = list(tokens[start : start + 512])
                array = (lib.llama_token * len(chunk))(*chunk)
                if lib.llama_decode(self._ctx, lib.llama_batch_get_one(array, len(chunk))) != 0:
                    raise ModelError(f"llama.cpp failed to read the prompt while measuring attention ({self.path})")
        finally:
            self._recording = False
        if set(self._rows) != self.layers:
            raise ModelError(
                "llama.cpp did not expose its attention (no kq_soft_max tensors); this build cannot run "
                "attention sorting: set context.order=reversed"
            )
        stacked = np.stack([self._rows[i][:, : len(tokens)] for i in sorted(self._rows)])
        return stacked.mean(axis=(0, 1))

    def span_attention(self, tokens: Sequence[int], prompt: str, spans: Sequence[tuple[int, int]]) -> list[float]:
        """The attention each character span of ``prompt`` receives from its last token.

        Args:
            tokens: The prompt's tokens, exactly as generation reads them.
            prompt: The prompt text; each token's text is laid end to end to find which characters it covers.
            spans: ``(start, end)`` character offsets into ``prompt``.
        """
        llama = self._llama
        per_token = self.last_token_attention(tokens)
        # Byte offsets of each token, then the spans' character offsets as byte offsets.
        pieces = [llama.detokenize([t], special=True) for t in tokens]
        if tokens[0] == llama.token_bos() and not prompt.encode("utf-8").startswith(pieces[0]):
            pieces[0] = b""  # a BOS added in front of the text, not written in it
        ends = np.cumsum([len(p) for p in pieces])
        starts = np.concatenate([[0], ends[:-1]])
        scores = []
        for start, end in spans:
            b_start = len(prompt[:start].encode("utf-8"))
            b_end = len(prompt[:end].encode("utf-8"))
            inside = (starts < b_end) & (ends > b_start)
            scores.append(float(per_token[inside].sum()))
        return scores
