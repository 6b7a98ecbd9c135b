"""HybridRetriever: units (passage, proposition, document) and what a hit's text is."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import ContextSettings, RetrievalSettings, Settings
from assistant.models.fake import FakeEmbedder
from assistant.types import Trace
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from ingestion.propositions import DeterministicExtractor
from retrievers.hybrid import HybridRetriever
from retrievers.store import open_store


@pytest.fixture
def store(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "tower.md").write_text(
        "# Eiffel Tower\nThe Eiffel Tower is in Paris. It was completed in 1889. Gustave Eiffel's company built it.\n"
    )
    (corpus / "lake.md").write_text("# Baikal\nLake Baikal is in Siberia. Lake Baikal is the deepest lake.\n")
    with open_store(settings) as s, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, s, docstore, DeterministicExtractor()).ingest_paths([corpus], progress=False)
        yield s


def retriever(store, embedder, unit: str, context: str = "passage", k: int = 4) -> HybridRetriever:
    return HybridRetriever(store, embedder, RetrievalSettings(unit=unit, top_k=k), ContextSettings(unit=context))


def test_default_init(store, fake_embedder) -> None:
    r = HybridRetriever(store, fake_embedder, RetrievalSettings())
    assert r.settings.unit == "passage" and r.context.unit == "passage"


def test_passage_units(store, fake_embedder) -> None:
    trace = Trace()
    hits = retriever(store, fake_embedder, "passage").retrieve("When was the Eiffel Tower completed?", trace)
    assert hits[0].text.startswith("# Eiffel Tower")
    assert len({h.unit_id for h in hits}) == len(hits) == 2  # one passage per document here
    assert [s.name for s in trace.stages] == ["embed_query", "search", "legs"]
    assert trace.stages[1].details["unit"] == "passage"
    legs = trace.stages[2].details["legs"]
    assert set(legs) == {"q0.dense", "q0.bm25"}
    assert {h.unit_id for h in hits} <= set(legs["q0.dense"]) | set(legs["q0.bm25"])


def test_score_fusion_is_a_setting_and_the_trace_names_it(store, fake_embedder) -> None:
    trace = Trace()
    settings = RetrievalSettings(fusion="rrf-confidence")
    hits = HybridRetriever(store, fake_embedder, settings).retrieve("When was the Eiffel Tower completed?", trace)
    search = trace.stages[1].details
    assert search["fusion"] == "rrf-confidence" and set(search["fusion_weights"]) == {"q0.dense", "q0.bm25"}
    assert hits and hits[0].text.startswith("# Eiffel Tower")


def test_proposition_units_show_their_passage_once(store, fake_embedder) -> None:
    hits = retriever(store, fake_embedder, "proposition").retrieve("When was the Eiffel Tower completed 1889?")
    assert ":p" in hits[0].unit_id  # the ranked unit is a proposition...
    assert hits[0].text.startswith("# Eiffel Tower")  # ...shown as its whole passage
    assert len({h.passage_id for h in hits}) == len(hits)


def test_proposition_context_shows_the_proposition(store, fake_embedder) -> None:
    hits = retriever(store, fake_embedder, "proposition", context="proposition").retrieve("completed 1889")
    assert any("1889" in h.text and not h.text.startswith("#") for h in hits)
    assert all(":p" in h.unit_id for h in hits)


def test_document_units_rank_each_document_once(store, fake_embedder) -> None:
    hits = retriever(store, fake_embedder, "document", k=5).retrieve("deepest lake Siberia")
    assert len({h.doc_id for h in hits}) == len(hits) == 2
    assert "Baikal" in hits[0].text


def test_empty_query_is_an_error(store, fake_embedder) -> None:
    with pytest.raises(ValueError, match="empty"):
        retriever(store, fake_embedder, "passage").retrieve("  ")


def test_passage_and_proposition_rankings_are_fused_per_passage(store, fake_embedder) -> None:
    hits = retriever(store, fake_embedder, "passage+proposition").retrieve("When was the Eiffel Tower completed 1889?")
    assert hits[0].text.startswith("# Eiffel Tower")  # the whole passage is shown...
    assert hits[0].unit_id == hits[0].passage_id  # ...and reported as itself
    assert len({h.passage_id for h in hits}) == len(hits) == 2


def test_fusion_adds_a_passage_ranks_and_keeps_its_best_cosine() -> None:
    from assistant.types import Hit
    from retrievers.hybrid import fuse_passage_rankings

    def hit(unit: str, passage: str, cosine: float | None) -> Hit:
        return Hit(unit, f"text of {passage}", 0.0, "s", passage, "d", dense_score=cosine)

    own = [hit("a", "a", 0.5), hit("b", "b", 0.4)]
    by_proposition = [hit("b:p0", "b", 0.7), hit("c:p1", "c", 0.6), hit("a:p2", "a", None)]
    fused = fuse_passage_rankings([own, by_proposition], rrf_k=60)
    assert [h.unit_id for h in fused] == ["b", "a", "c"]  # 1/62+1/61 > 1/61+1/63 > 1/62
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].dense_score == 0.7 and fused[1].dense_score == 0.5
    assert fused[2].text == "text of c"  # found only through its proposition, shown as its passage
