"""`tessera migrate`: the embedded shards copied to a Qdrant server's collections (qdrant-client local mode here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import QdrantClient
from typer.testing import CliRunner

from assistant.cli import app
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.hybrid import HybridRetriever
from retrievers.migrate import copy_shard
from retrievers.client_store import ClientStore
from retrievers.store import EdgeStore, StoreError, open_store


def indexed_home(settings: Settings, tmp_path: Path, embedder: FakeEmbedder) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lake.md").write_text("# Baikal\nLake Baikal is in Siberia. It is the deepest lake on Earth.\n")
    (corpus / "tower.md").write_text("# Eiffel Tower\nThe Eiffel Tower is in Paris. It was completed in 1889.\n")
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, embedder, store, docstore).ingest_paths([corpus], progress=False)


def test_a_copied_index_answers_with_the_same_hits(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    indexed_home(settings, tmp_path, fake_embedder)
    source = EdgeStore(settings.qdrant_path, settings.store.collection)
    target = ClientStore(QdrantClient(":memory:"), "tessera")
    copied = copy_shard(source, target)
    assert copied.points == source.count() == target.count() > 0
    assert target.values("embedder") == ["fake"]  # payloads travel whole: state, embedder, metadata
    for question in ("When was the Eiffel Tower completed?", "Which lake is the deepest?"):
        here = HybridRetriever(source, fake_embedder, settings.retrieval).retrieve(question)
        there = HybridRetriever(target, fake_embedder, settings.retrieval).retrieve(question)
        assert [h.unit_id for h in here] == [h.unit_id for h in there]
    with pytest.raises(StoreError, match="already holds"):  # a second copy would mix two indexes
        copy_shard(source, target)
    source.close()


def test_migrate_command_copies_index_and_memory(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    indexed_home(settings, tmp_path, fake_embedder)
    monkeypatch.setenv("TESSERA_HOME", str(settings.home))
    monkeypatch.setenv("TESSERA_MODELS__EMBEDDER", "fake")
    target = tmp_path / "server"
    result = CliRunner().invoke(app, ["migrate", "--to", str(target)])
    assert result.exit_code == 0, result.output
    assert "into collection 'tessera'" in result.output and "into collection 'tessera-memory'" in result.output
    client = QdrantClient(path=str(target))
    try:
        with EdgeStore(settings.qdrant_path, settings.store.collection) as source:
            assert client.count("tessera").count == source.count() > 0
    finally:
        client.close()
    again = CliRunner().invoke(app, ["migrate", "--to", str(target)])
    assert again.exit_code == 2 and "already holds" in again.output


def test_a_collection_made_beforehand_is_used_and_gains_its_payload_indexes(
    settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdrant_client import models

    indexed_home(settings, tmp_path, fake_embedder)
    client = QdrantClient(":memory:")
    indexed: list[str] = []  # local mode accepts payload indexes but keeps none, so the calls are what we see
    monkeypatch.setattr(client, "create_payload_index", lambda collection, field, schema: indexed.append(field))
    client.create_collection(  # as a cluster operator would, with shards and replicas of their choosing
        "tessera",
        vectors_config={"dense": models.VectorParams(size=fake_embedder.dimension, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        shard_number=2, replication_factor=1,
    )
    with EdgeStore(settings.qdrant_path, settings.store.collection) as source:
        copied = copy_shard(source, ClientStore(client, "tessera"))
    assert copied.points > 0
    assert {"doc_id", "state", "embedder", "date"} <= set(indexed)
    client.close()
