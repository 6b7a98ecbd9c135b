"""HybridRetriever: units (passage, proposition, document) and what a hit's text is."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import ContextSettings, QuerySettings, RetrievalSettings, Settings
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
    assert [s.name for s in trace.stages] == ["embed_query", "metadata", "search", "legs"]
    assert trace.stages[2].details["unit"] == "passage"
    legs = trace.stages[3].details["legs"]
    assert set(legs) == {"q0.dense", "q0.bm25"}
    assert {h.unit_id for h in hits} <= set(legs["q0.dense"]) | set(legs["q0.bm25"])


def test_score_fusion_is_a_setting_and_the_trace_names_it(store, fake_embedder) -> None:
    trace = Trace()
    settings = RetrievalSettings(fusion="rrf-confidence")
    hits = HybridRetriever(store, fake_embedder, settings).retrieve("When was the Eiffel Tower completed?", trace)
    search = {s.name: s.details for s in trace.stages}["search"]
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


@pytest.fixture
def lopsided(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder):
    """One long document about Zorblat (many passages) and one short one about Quillon."""
    settings = settings.model_copy(update={"ingestion": settings.ingestion.model_copy(update={"chunk_size": 40, "chunk_overlap": 0})})
    corpus = tmp_path / "lopsided"
    corpus.mkdir()
    paragraphs = [f"Zorblat Industries was founded in {1900 + n}; that year Zorblat Industries grew." for n in range(12)]
    (corpus / "zorblat.md").write_text("\n\n".join(paragraphs) + "\n")
    filler = "The valley has rivers, hills, farms, roads, bridges, mills, markets and old stone houses. " * 3
    (corpus / "quillon.md").write_text(filler + "One workshop there is called Quillon Works.\n")
    for n in range(8):  # other documents, so that a word in every Zorblat passage is not common corpus-wide
        (corpus / f"other{n}.md").write_text(f"Report {n} covers rainfall, harvests and prices in district {n}.\n")
    with open_store(settings) as s, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, s, docstore).ingest_paths([corpus], progress=False)
        yield s


QUESTION = "Were Zorblat Industries and Quillon Works founded in the same year?"


def docs_of(hits) -> list[str]:
    return [h.source.rsplit("/", 1)[-1] for h in hits]


def test_one_document_can_take_every_place_without_diversity(lopsided, fake_embedder) -> None:
    hits = HybridRetriever(lopsided, fake_embedder, RetrievalSettings(top_k=3)).retrieve(QUESTION)
    assert docs_of(hits) == ["zorblat.md"] * 3  # the case the two settings below are for


def test_max_per_document_lets_other_documents_in(lopsided, fake_embedder) -> None:
    trace = Trace()
    settings = RetrievalSettings(top_k=3, max_per_document=1)
    hits = HybridRetriever(lopsided, fake_embedder, settings).retrieve(QUESTION, trace)
    assert docs_of(hits)[:2] == ["zorblat.md", "quillon.md"] and len(hits) == 3
    assert {s.name: s.details for s in trace.stages}["search"]["max_per_document"] == 1


def test_decomposed_question_gives_each_part_a_place(lopsided, fake_embedder) -> None:
    trace = Trace()
    r = HybridRetriever(lopsided, fake_embedder, RetrievalSettings(top_k=3), query=QuerySettings(decompose="rules"))
    hits = r.retrieve(QUESTION, trace)
    assert "quillon.md" in docs_of(hits)[:2]
    stages = {s.name: s.details for s in trace.stages}
    assert stages["decompose"]["parts"] == [
        "Were Zorblat Industries founded in the same year?", "Were Quillon Works founded in the same year?"
    ]
    assert stages["search"]["parts"] == 2
    assert len({h.unit_id for h in hits}) == len(hits)


def test_single_part_question_is_retrieved_as_before(lopsided, fake_embedder) -> None:
    plain = HybridRetriever(lopsided, fake_embedder, RetrievalSettings(top_k=3)).retrieve("When was Quillon Works founded?")
    r = HybridRetriever(lopsided, fake_embedder, RetrievalSettings(top_k=3), query=QuerySettings(decompose="rules"))
    trace = Trace()
    assert r.retrieve("When was Quillon Works founded?", trace) == plain
    stages = {s.name: s.details for s in trace.stages}
    assert stages["decompose"]["parts"] == [] and "parts" not in stages["search"]


def test_title_links_bring_the_second_hop(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder) -> None:
    from assistant.types import Document

    docs = [
        Document("film", "film", "Blue Velvet (film)", "Blue Velvet is a 1986 film by David Lynch, shot in Leland."),
        Document("lynch", "lynch", "David Lynch", "Born in Missoula, Montana, he studied painting."),
    ] + [Document(f"d{n}", f"d{n}", f"Leland story {n}", f"The director of Leland film story {n} was born in Leland in 1986.") for n in range(6)]
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, store, docstore).index_documents([(d, d.id) for d in docs])
        question = "Where was the director of the 1986 film shot in Leland born?"
        one_hop = HybridRetriever(store, fake_embedder, RetrievalSettings(top_k=3, links=0)).retrieve(question)
        assert one_hop[0].doc_id == "film" and "lynch" not in [h.doc_id for h in one_hop]
        trace = Trace()
        two_hops = HybridRetriever(store, fake_embedder, RetrievalSettings(top_k=3, links=1)).retrieve(question, trace)
    assert [h.doc_id for h in two_hops][:2] == ["film", "lynch"]
    links = {s.name: s.details for s in trace.stages}["search"]["links"]
    assert links == {"from": ["film"], "titles": ["David Lynch"]}


def test_searching_propositions_of_an_index_without_them_says_how_to_build_them(settings, fake_embedder, tmp_path) -> None:
    from assistant.config import RetrievalSettings
    from assistant.types import Document
    from ingestion.docstore import DocStore
    from ingestion.pipeline import Ingestor
    from retrievers.hybrid import HybridRetriever
    from retrievers.store import open_store

    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, store, docstore).index_documents([(Document("a", "a", "A", "Lake Baikal is deep."), "1")])
        assert HybridRetriever(store, fake_embedder, RetrievalSettings()).retrieve("Baikal")  # passages: fine
        for unit in ("proposition", "passage+proposition"):
            with pytest.raises(ValueError, match="holds none.*--set ingestion.propositions=rules"):
                HybridRetriever(store, fake_embedder, RetrievalSettings(unit=unit)).retrieve("Baikal")


def test_a_fusion_tie_goes_to_the_hit_closer_to_the_question(fake_embedder, tmp_path) -> None:
    from assistant.config import RetrievalSettings, Settings
    from ingestion.docstore import DocStore
    from ingestion.pipeline import Ingestor
    from retrievers.hybrid import HybridRetriever
    from retrievers.store import open_store

    firsts = []
    for folder in "abcdefgh":  # unit ids hash the file paths: before, the tie went whichever way they sorted
        settings = Settings(home=tmp_path / folder / "home")
        corpus = tmp_path / folder / "docs"
        corpus.mkdir(parents=True)
        (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep. It lies in Siberia.\n")
        (corpus / "towers.md").write_text("# Towers\nThe Eiffel Tower is in Paris and is 330 metres tall.\n")
        with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
            Ingestor(settings, fake_embedder, store, docstore).ingest_paths([corpus], progress=False)
            hits = HybridRetriever(store, fake_embedder, RetrievalSettings()).retrieve("How tall is the Eiffel Tower, and how deep is Lake Baikal?")
        assert hits[0].score == hits[1].score  # the two legs disagree: DBSF ties them
        firsts.append(hits[0].title)
        assert hits[0].dense_score > hits[1].dense_score
    assert firsts == ["Towers"] * 8
