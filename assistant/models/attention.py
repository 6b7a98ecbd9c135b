"""How much attention each span of a prompt receives: the measurement behind attention sorting.

Peysakhovich & Lerer ("Attention Sorting Combats Recency Bias In Long Context Language Models") run one
decoding step over the prompt and read how much attention each document's tokens receive from the
position that generates next. This module does that for a transformers causal LM:

- attention weights need the eager implementation (with sdpa, ``output_attentions=True`` returns nothing),
  so the model is switched to eager for this one forward pass and back afterwards;
- only layers that can see the whole prompt count: Gemma 3's sliding-window layers (window 512) cannot
  see an early source in a long prompt, so its ``full_attention`` layers are used, and a model without
  layer types uses all of its layers;
- a span's score is the attention mass its tokens receive from the last prompt position, averaged over
  heads and the chosen layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def full_attention_layers(config: Any) -> list[int]:
    """Indices of the layers whose attention spans the whole prompt."""
    count = config.num_hidden_layers
    types = getattr(config, "layer_types", None)
    if types:
        full = [i for i, kind in enumerate(types) if kind == "full_attention"]
        if full:
            return full
    return list(range(count))


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
    import torch

    encoded = tokenizer(prompt, return_tensors="pt", return_offsets_mapping=True, add_special_tokens=add_special_tokens)
    offsets = encoded.pop("offset_mapping")[0].tolist()
    layers = full_attention_layers(model.config)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = model(**encoded, output_attentions=True, use_cache=False)
    finally:
        model.set_attn_implementation(previous)
    # (layers, heads, key positions): what the last position attends to, then the mean over layers and heads.
    last = torch.stack([out.attentions[i][0, :, -1, :] for i in layers]).float()
    per_token = last.mean(dim=(0, 1))
    scores = []
    for start, end in spans:
        tokens = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        scores.append(float(per_token[tokens].sum()) if tokens else 0.0)
    return scores
