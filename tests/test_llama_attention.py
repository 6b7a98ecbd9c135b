"""The attention reader's assumptions that can be checked without a model: layers and the tensor layout."""

from __future__ import annotations

import ctypes

from assistant.models.llama_attention import _GgmlTensor, attention_layers


def test_gemma3_uses_its_global_layers_only() -> None:
    assert attention_layers("gemma3", 18) == [5, 11, 17]


def test_other_architectures_use_every_layer() -> None:
    assert attention_layers("qwen2", 4) == [0, 1, 2, 3]
    assert attention_layers("llama", 2) == [0, 1]


def test_tensor_struct_matches_ggml_h_on_64_bit() -> None:
    """Offsets of ``struct ggml_tensor`` (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10)."""
    assert ctypes.sizeof(ctypes.c_void_p) == 8
    assert _GgmlTensor.ne.offset == 16 and _GgmlTensor.nb.offset == 48 and _GgmlTensor.op.offset == 80
    assert _GgmlTensor.data.offset == 248 and _GgmlTensor.name.offset == 256
