"""How much attention each span of a prompt receives: the measurement behind attention sorting.

Peysakhovich & Lerer ("Attention Sorting Combats Recency Bias In Long Context Language Models") run one
decoding step over the prompt and read how much attention each document's tokens receive from the
position that generates next. This module does that for a transformers causal LM:

- the eager implementation would give attention weights (sdpa's ``output_attentions=True`` returns
  nothing), but it materialises every layer's full prompt x prompt matrix: 7-13 s for an 11-passage prompt
  on two cores. Only one row of it is needed, so the forward pass runs sdpa through a registered attention
  function (`AttentionInterface`) that also computes, for the wanted layers, the softmax of the last query
  against all keys. Same numbers as eager (tested), at the cost of one ordinary prefill;
- only layers that can see the whole prompt count: Gemma 3's sliding-window layers (window 512) cannot
  see an early source in a long prompt, so its ``full_attention`` layers are used, and a model without
  layer types uses all of its layers;
- a span's score is the attention mass its tokens receive from the last prompt position, averaged over
  heads and the chosen layers.
"""

from __future__ import annotations

import contextvars
import threading

from collections.abc import Sequence
from typing import Any


def source_spans(prompt: str, sources: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of each source block in the rendered prompt, found in order.

    Raises:
        ValueError: A source does not occur (after the previous one) in the prompt.
    """
    spans, cursor = [], 0
    for source in sources:
        start = prompt.find(source, cursor)
        if start < 0:
            raise ValueError(f"source not found in the prompt: {source[:60]!r}")
        spans.append((start, start + len(source)))
        cursor = start + len(source)
    return spans


def full_attention_layers(config: Any) -> list[int]:
    """Indices of the layers whose attention spans the whole prompt."""
    count = config.num_hidden_layers
    types = getattr(config, "layer_types", None)
    if types:
        full = [i for i, kind in enumerate(types) if kind == "full_attention"]
        if full:
            return full
    return list(range(count))


_RECORDING = "tessera_last_row"
# What one call records (the wanted layers and their rows): per call, never shared between threads.
_recording: contextvars.ContextVar[tuple[set[int], dict[int, Any]] | None] = contextvars.ContextVar("_recording", default=None)
# The recording implementation is switched on the model object, which every thread shares: one call at a time.
_SWAP = threading.Lock()


def _recording_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
    """sdpa attention that also keeps the last position's attention row for the wanted layers."""
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    layer = getattr(module, "layer_idx", None)
    recording = _recording.get()
    if recording is not None and layer in recording[0]:
        keys = repeat_kv(key, query.shape[1] // key.shape[1])
        scaling = kwargs.get("scaling") or query.shape[-1] ** -0.5
        logits = (query[:, :, -1:, :] @ keys.transpose(2, 3)).float() * scaling
        if cap := getattr(module, "attn_logit_softcapping", None):
            logits = torch.tanh(logits / cap) * cap
        # The last position of a causal prompt sees every key, so no mask applies to this row.
        recording[1][layer] = torch.softmax(logits, dim=-1)[0, :, 0, :]
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if _RECORDING not in AttentionInterface._global_mapping:
        AttentionInterface.register(_RECORDING, _recording_attention)
        AttentionMaskInterface.register(_RECORDING, sdpa_mask)


def last_row_attention(model: Any, input_ids: Any, layers: Sequence[int]) -> Any:
    """Attention of the last position over all positions, per layer in ``layers`` and head.

    Returns:
        A float tensor ``(len(layers), heads, positions)``.
    """
    import torch

    _register()
    rows: dict[int, Any] = {}
    token = _recording.set((set(layers), rows))
    try:
        with _SWAP:
            previous = model.config._attn_implementation
            model.set_attn_implementation(_RECORDING)
            try:
                with torch.inference_mode():
                    model(input_ids=input_ids, use_cache=False, logits_to_keep=1)
            finally:
                model.set_attn_implementation(previous)
        return torch.stack([rows[i] for i in layers])
    finally:
        _recording.reset(token)


def span_attention(
    model: Any, tokenizer: Any, prompt: str, spans: Sequence[tuple[int, int]], *, add_special_tokens: bool = False
) -> list[float]:
    """The attention each character span of ``prompt`` receives from its last token.

    Args:
        model: A transformers causal LM.
        tokenizer: Its fast tokenizer (character offsets are needed to map spans to tokens).
        prompt: The exact prompt text.
        spans: ``(start, end)`` character offsets into ``prompt``, one per source.
        add_special_tokens: Tokenize as generation does (a base model gets its BOS token).

    Returns:
        One score per span, in the order given: the summed attention weight of the span's tokens.
    """
    encoded = tokenizer(prompt, return_tensors="pt", return_offsets_mapping=True, add_special_tokens=add_special_tokens)
    offsets = encoded["offset_mapping"][0].tolist()
    # (layers, heads, key positions): what the last position attends to, then the mean over layers and heads.
    per_token = last_row_attention(model, encoded["input_ids"], full_attention_layers(model.config)).mean(dim=(0, 1))
    scores = []
    for start, end in spans:
        tokens = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        scores.append(float(per_token[tokens].sum()) if tokens else 0.0)
    return scores
