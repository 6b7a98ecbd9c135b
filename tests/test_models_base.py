from __future__ import annotations

import numpy as np
import pytest

from assistant.models.base import Message, StopTrimmer
from assistant.models.fake import FakeEmbedder, FakeGenerator


@pytest.mark.parametrize(
    "pieces,stops,expected",
    [
        (["Hello", " world"], [], "Hello world"),
        (["Paris [1]", "\nQuest", "ion: next"], ["\nQuestion:"], "Paris [1]"),
        (["ab", "c", "STO", "P", "x"], ["STOP"], "abc"),
        (["no stop", " here"], ["\n\n\n"], "no stop here"),
        (["STOP"], ["STOP"], ""),
    ],
)
def test_stop_trimmer(pieces: list[str], stops: list[str], expected: str) -> None:
    trimmer = StopTrimmer(stops)
    out = "".join(trimmer.feed(p) for p in pieces) + trimmer.flush()
    assert out == expected


def test_stream_equals_generate_and_honours_stop() -> None:
    gen = FakeGenerator(["Answer one [1]\nQuestion: more", "Answer one [1]\nQuestion: more"])
    streamed = list(gen.stream([Message("user", "q")], stop=["\nQuestion:"]))
    assert len(streamed) > 1
    assert "".join(streamed) == gen.generate([Message("user", "q")], stop=["\nQuestion:"]) == "Answer one [1]"
    assert len(gen.calls) == 2 and gen.calls[0][0].content == "q"


def test_fake_generator_default_and_queue() -> None:
    gen = FakeGenerator(default="dunno")
    gen.enqueue("first")
    assert gen.generate([]) == "first"
    assert gen.generate([]) == "dunno"


def test_fake_embedder_is_normalised_and_deterministic() -> None:
    emb = FakeEmbedder(32)
    a = emb.embed(["red apple", "red apple", "blue sky", ""])
    assert a.shape == (4, 32) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.allclose(a[0], a[1])
    assert float(a[0] @ a[2]) < 0.99
    assert emb.embed([]).shape == (0, 32)
    with pytest.raises(ValueError):
        FakeEmbedder(1)
