"""The performance work: the embedding cache, warm-up, and the benchmarks' own arithmetic (fast, fakes only)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.embedding_cache import CachedEmbedder
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.types import Document
from eval.bench.floors import encoder_flops
from eval.bench.latency import first_token, percentiles
from eval.bench.scale import measure, synthetic_units
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor


class CountingEmbedder(FakeEmbedder):
    """A fake that records every text it was asked to embed."""

    def __init__(self, name: str = "fake") -> None:
        super().__init__(dimension=32)
        self.name = name
        self.seen: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.seen += list(texts)
        return super().embed(texts)


def test_cache_returns_the_inner_vectors_and_embeds_each_text_once(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path / "cache.sqlite3")
    texts = ["alpha beta", "gamma", "alpha beta", "delta epsilon"]
    first = cached.embed(texts)
    assert np.allclose(first, FakeEmbedder(32).embed(texts))
    assert inner.seen == texts  # duplicates inside one call are computed, then cached
    second = cached.embed(["gamma", "zeta", "alpha beta"])
    assert inner.seen[len(texts):] == ["zeta"]
    assert np.allclose(second, FakeEmbedder(32).embed(["gamma", "zeta", "alpha beta"]))
    assert (cached.hits, cached.misses) == (2, 5)
    assert cached.embed([]).shape == (0, 32)


def test_cache_survives_reopening_and_is_keyed_by_model(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first = CachedEmbedder(CountingEmbedder(), path)
    first.embed(["kept across restarts"])
    first.close()
    again = CountingEmbedder()
    CachedEmbedder(again, path).embed(["kept across restarts"])
    assert again.seen == []
    other_model = CountingEmbedder(name="another-model")
    CachedEmbedder(other_model, path).embed(["kept across restarts"])
    assert other_model.seen == ["kept across restarts"]  # another embedder never reads these vectors


def _document(text: str) -> Document:
    return Document("doc1", "doc1.md", "Doc", text, {})


def test_reingesting_an_edited_document_embeds_only_changed_passages(settings: Settings) -> None:
    settings = settings.model_copy(update={"ingestion": settings.ingestion.model_copy(update={"chunk_size": 12, "chunk_overlap": 0, "propositions": "off"})})
    paragraphs = [f"Paragraph {i} talks about topic number {i} in some detail here." for i in range(8)]
    inner = CountingEmbedder()
    assistant = Assistant(settings, embedder=inner)
    with DocStore(settings.docstore_path) as docstore:
        ingestor = Ingestor(settings, inner, assistant.store, docstore)
        passages, _ = ingestor.index_documents([(_document("\n\n".join(paragraphs)), "v1")])
        assert passages >= 4
        inner.seen.clear()
        paragraphs[3] = "Paragraph 3 now says something entirely different about cache keys."
        ingestor.index_documents([(_document("\n\n".join(paragraphs)), "v2")])
    assistant.close()
    assert 1 <= len(inner.seen) < passages
    assert any("entirely different" in t for t in inner.seen)


def test_the_cache_can_be_turned_off(settings: Settings) -> None:
    off = settings.model_copy(update={"models": settings.models.model_copy(update={"embedding_cache": False})})
    inner = CountingEmbedder()
    assistant = Assistant(off, embedder=inner)
    with DocStore(off.docstore_path) as docstore:
        ingestor = Ingestor(off, inner, assistant.store, docstore)
        assert ingestor.embedder is inner
        ingestor.index_documents([(_document("One short text."), "v1")])
        ingestor.index_documents([(_document("One short text."), "v2")])
    assistant.close()
    assert len(inner.seen) == 2
    assert not off.embedding_cache_path.exists()


def test_warm_up_loads_what_the_first_question_needs(settings: Settings) -> None:
    loads: list[str] = []
    generator = SimpleNamespace(name="local", load=lambda: loads.append("generator"))
    inner = CountingEmbedder()
    assistant = Assistant(settings, embedder=inner, generator=generator)  # type: ignore[arg-type]
    assistant.warm_up()
    assert inner.seen and loads == ["generator"]
    assistant.warm_up(generator=False)
    assert loads == ["generator"]
    assistant.close()


def test_percentiles_and_first_token() -> None:
    assert percentiles([5.0, 1.0, 3.0]) == (3.0, 5.0)
    assert percentiles(list(map(float, range(1, 101)))) == (50.5, 95.0)
    first, total = first_token(iter(["", "a", "b", object()]))
    assert 0 <= first <= total


def test_encoder_flops_match_a_hand_count() -> None:
    config = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    # per token: 4*16 (projections) + 2*4*8 (feed-forward) + 2*3*4 (attention over 3 tokens) = 152
    assert encoder_flops(config, 3) == 2.0 * 2 * 152 * 3


def test_synthetic_units_are_deterministic_unit_vectors() -> None:
    a = list(synthetic_units(50, seed=3, batch=20))
    b = list(synthetic_units(50, seed=3, batch=20))
    assert [len(ids) for ids, _, _ in a] == [20, 20, 10]
    assert a[0][2] == b[0][2] and np.allclose(a[1][1], b[1][1])
    assert np.allclose(np.linalg.norm(a[0][1], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("backend", ["edge", "client"])
def test_scale_benchmark_measures_a_small_store(backend: str) -> None:
    row = measure(backend, 300, queries=5)
    assert row["units"] == 300 and row["write_units_s"] > 0
    assert row["plain"]["hybrid"]["p50_ms"] > 0
    assert ("indexed" in row) == (backend == "edge")


def test_chat_backend_warms_up_in_the_background_and_survives_a_failure(settings: Settings) -> None:
    from assistant.backend import ChatBackend

    settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={"enabled": False})})
    inner = CountingEmbedder()
    backend = ChatBackend(settings, assistant=Assistant(settings, embedder=inner, generator=FakeGenerator()))
    backend.warm_up().join(timeout=30)
    assert inner.seen == ["warm up"]

    class Broken(CountingEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("no model here")

    failing = ChatBackend(settings, assistant=Assistant(settings, embedder=Broken(), generator=FakeGenerator()))
    failing.warm_up().join(timeout=30)  # logged, not raised: the first question reports it
    backend.close()
    failing.close()


def test_ingest_asks_the_store_to_build_its_index(settings: Settings, tmp_path: Path) -> None:
    inner = CountingEmbedder()
    assistant = Assistant(settings, embedder=inner)
    calls: list[str] = []
    store = assistant.store
    original = store.optimize
    store.optimize = lambda: calls.append("optimize") or original()  # type: ignore[method-assign]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSome text about indexes.")
    with DocStore(settings.docstore_path) as docstore:
        ingestor = Ingestor(settings, inner, store, docstore)
        ingestor.ingest_paths([tmp_path / "docs"], progress=False)
        assert calls == ["optimize"]
        ingestor.ingest_paths([tmp_path / "docs"], progress=False)  # unchanged: nothing to index
        assert calls == ["optimize"]
        ingestor.index_documents([(_document("Other text."), "v1")])
        assert calls == ["optimize", "optimize"]
    assistant.close()


def test_eval_index_key_tells_embedder_dtypes_apart(settings: Settings) -> None:
    from eval.datasets import Dataset
    from eval.runner import index_key

    dataset = Dataset(name="d", corpus=[], questions=[])
    keys = {
        index_key(dataset, settings.model_copy(update={"models": settings.models.model_copy(update={"embedder_dtype": d})}))
        for d in ("float32", "bfloat16")
    }
    assert len(keys) == 2


def test_eval_index_key_names_the_model_that_writes_propositions(settings: Settings) -> None:
    from eval.datasets import Dataset
    from eval.runner import index_key

    dataset = Dataset(name="d", corpus=[], questions=[])

    def key(propositions: str, generator: str) -> str:
        changed = {"ingestion": {"propositions": propositions}, "models": {"generator": generator}}
        return index_key(dataset, Settings(home=settings.home, **changed))

    assert key("llm", "qwen2.5-coder-0.5b") != key("llm", "qwen2.5-coder-1.5b")
    assert key("rules", "qwen2.5-coder-0.5b") == key("rules", "qwen2.5-coder-1.5b")  # answering model: same index
    assert key("rules", "gemma-3-270m") != key("off", "gemma-3-270m")


@pytest.mark.integration
def test_bf16_embeddings_stay_within_float32s_neighbourhood() -> None:
    from assistant.models.embedders import minilm

    texts = ["Which magazine was started first?", "A passage about the history of printing presses in Europe."]
    fp32, bf16 = minilm(dtype="float32").embed(texts), minilm(dtype="bfloat16").embed(texts)
    assert bf16.dtype == np.float32
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (fp32 * bf16).sum(axis=1).min() > 0.999


def test_gemv_rate_is_measured() -> None:
    from eval.bench.floors import gemv_gbs

    assert gemv_gbs(64, 32, repeats=2) > 0
