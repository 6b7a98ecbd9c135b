"""Questions that name a source or a date: recognised by rules, turned into restricted legs that boost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from assistant.config import QuerySettings, RetrievalSettings, Settings
from assistant.models.fake import FakeEmbedder
from assistant.types import Document, Trace
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.hybrid import HybridRetriever
from retrievers.query_stages import Metadata
from retrievers.points import DateRange
from retrievers.query_analysis import analyse, find_dates, find_sources
from retrievers.store import open_store

KNOWN = {"site": ["The Verge", "TechCrunch", "Meridian Post"], "author": ["Ann Lee"]}
TODAY = dt.date(2026, 12, 6)


def test_sources_are_matched_exactly_and_fuzzily_on_word_edges() -> None:
    found = find_sources("What did the verge's review and Techcrunch say?", KNOWN)
    assert [(m.field, m.value) for m in found] == [("site", "TechCrunch"), ("site", "The Verge")]
    assert [m.value for m in find_sources("As Meridain Post reported, who won?", KNOWN)] == ["Meridian Post"]  # a typo
    assert find_sources("Which rivers converge here?", KNOWN) == ()  # "verge" inside a word
    assert [m.field for m in find_sources("What did Ann Lee write?", KNOWN)] == ["author"]
    assert find_sources("Anything?", {}) == ()


@pytest.mark.parametrize(
    ("question", "start", "end"),
    [
        ("What happened, as reported on October 5, 2023?", "2023-10-05", "2023-10-06"),
        ("the memo of 5 Oct 2023", "2023-10-05", "2023-10-06"),
        ("the entry dated 2023-10-05", "2023-10-05", "2023-10-06"),
        ("in the email from March 2024", "2024-03-01", "2024-04-01"),
        ("the report published in 2022", "2022-01-01", "2023-01-01"),
        ("the Q3 report from last year", "2025-01-01", "2026-01-01"),
        ("what changed last month", "2026-11-01", "2026-12-01"),
        ("what did we decide yesterday", "2026-12-05", "2026-12-06"),
        ("last week's standup notes", "2026-11-23", "2026-11-30"),
        ("the December 2026 plan, in December 2026", "2026-12-01", "2027-01-01"),
    ],
)
def test_dates_become_ranges(question: str, start: str, end: str) -> None:
    (mention,) = find_dates(question, TODAY)[:1]
    assert mention.range == DateRange(f"{start}T00:00:00Z", f"{end}T00:00:00Z")


@pytest.mark.parametrize(
    "question",
    ["Super Bowl 2021 location", "Who won the 1998 World Cup?", "What is 2023 in Roman numerals?", "February 30, 2023 events"],
)
def test_years_and_impossible_days_without_a_cue_are_not_dates(question: str) -> None:
    assert find_dates(question, TODAY) == ()


def test_a_day_is_not_also_its_month() -> None:
    assert len(find_dates("published on October 5, 2023", TODAY)) == 1
    assert not analyse("When was the tower built?", KNOWN, TODAY)


@pytest.fixture
def outlets(settings: Settings, fake_embedder: FakeEmbedder):
    """The same story from two outlets on two days; the second outlet's words match the question a little better."""
    docs = [
        Document("a", "a", "", "The final was won by the Harbor team after extra time.", {"site": "Meridian Post", "date": "2023-10-05"}),
        Document("b", "b", "", "The final was won by the River team after extra time, the final said.", {"site": "Summit Wire", "date": "2023-11-20"}),
    ]
    # Without the metadata header, so only the analyser's legs know the outlets and days.
    settings = settings.model_copy(update={"ingestion": settings.ingestion.model_copy(update={"metadata_header": False})})
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, store, docstore).index_documents([(d, d.id) for d in docs])
        yield store


def ranked(store, embedder, question: str, metadata: str) -> tuple[list[str], dict]:
    trace = Trace()
    r = HybridRetriever(store, embedder, RetrievalSettings(top_k=2), query=QuerySettings(metadata=metadata))
    hits = r.retrieve(question, trace)
    return [h.doc_id for h in hits], {s.name: s.details for s in trace.stages}


def test_a_named_source_is_boosted(outlets, fake_embedder) -> None:
    question = "According to Meridian Post, who won the final?"
    assert ranked(outlets, fake_embedder, question, "off")[0] == ["b", "a"]  # the words alone prefer b
    order, stages = ranked(outlets, fake_embedder, question, "boost")
    assert order == ["a", "b"]  # boosted, and b is still there
    assert stages["metadata"]["sources"] == [{"field": "site", "value": "Meridian Post", "said": "Meridian Post"}]
    assert {leg for leg in stages["legs"]["legs"]} >= {"meta0.dense", "meta0.bm25"}


def test_a_named_date_is_boosted_and_a_filter_keeps_only_its_documents(outlets, fake_embedder) -> None:
    question = "Who won the final, as reported on October 5, 2023?"
    order, stages = ranked(outlets, fake_embedder, question, "boost")
    assert order == ["a", "b"] and stages["metadata"]["dates"][0]["said"] == "October 5, 2023"
    assert ranked(outlets, fake_embedder, question, "filter")[0] == ["a"]
    assert ranked(outlets, fake_embedder, "Who won the final, as reported on May 1, 2020?", "filter")[0] == []


def test_questions_naming_nothing_are_unchanged(outlets, fake_embedder) -> None:
    off, _ = ranked(outlets, fake_embedder, "Who won the final?", "off")
    boosted, stages = ranked(outlets, fake_embedder, "Who won the final?", "boost")
    assert off == boosted and stages["metadata"] == {"mode": "boost", "sources": [], "dates": []}


def test_known_sources_are_refreshed_after_an_ingest(settings: Settings, fake_embedder: FakeEmbedder) -> None:
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        ingestor = Ingestor(settings, fake_embedder, store, docstore)
        ingestor.index_documents([(Document("a", "a", "", "Text one.", {"site": "Meridian Post"}), "1")])
        r = HybridRetriever(store, fake_embedder, RetrievalSettings(), query=QuerySettings())
        metadata = Metadata(RetrievalSettings(), QuerySettings(), r)
        assert metadata.known_sources()["site"] == ["Meridian Post"]
        ingestor.index_documents([(Document("b", "b", "", "Text two.", {"site": "Summit Wire"}), "2")])
        assert sorted(metadata.known_sources()["site"]) == ["Meridian Post", "Summit Wire"]
