"""Extractive context compression: the sentences about the question, within a word budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.assistant import Assistant
from assistant.compression import GAP, ContextCompressor
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.types import Hit, Trace
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.store import open_store

LAKE = (
    "Lake Baikal lies in southern Siberia. Its water is famously clear in winter. "
    "Lake Baikal is 1,642 metres deep at its deepest point. Seals live in the lake."
)
TOWER = "The Eiffel Tower stands in Paris. It was finished in 1889 for a world fair. Tourists climb it every day."


def hit(n: int, text: str, title: str) -> Hit:
    return Hit(f"u{n}", text, 1.0, f"{title}.md", f"p{n}", f"d{n}", title)


def test_hits_within_the_budget_are_returned_unchanged_without_embedding() -> None:
    class Refuses(FakeEmbedder):
        def embed(self, texts):  # type: ignore[override]
            raise AssertionError("nothing should be embedded when the passages fit")

    hits = [hit(1, LAKE, "Lakes"), hit(2, TOWER, "Towers")]
    trace = Trace()
    assert ContextCompressor(Refuses(), 500).compress("How deep is Lake Baikal?", hits, trace) == hits
    assert trace.stages[0].details["ran"] is False


def test_keeps_the_sentence_about_the_question_and_each_sources_best() -> None:
    hits = [hit(1, LAKE, "Lakes"), hit(2, TOWER, "Towers")]
    trace = Trace()
    out = ContextCompressor(FakeEmbedder(256), 12).compress("How deep is Lake Baikal at its deepest point?", hits, trace)
    assert [h.unit_id for h in out] == ["u1", "u2"]  # same sources, same order: citations keep their numbers
    assert out[0].text == "Lake Baikal is 1,642 metres deep at its deepest point."
    assert len(out[1].text.split(". ")) == 1 and out[1].text in TOWER  # one sentence of the other source, verbatim
    details = trace.stages[0].details
    assert details["ran"] is True and details["words_before"] > details["words_after"]
    assert details["kept"] == {"u1": "1/4", "u2": "1/3"}


def test_kept_sentences_stay_in_passage_order_with_a_gap_mark() -> None:
    passage = "Alpha founded the town. Weather was mild. Bakers sold bread. Alpha later built the harbour."
    out = ContextCompressor(FakeEmbedder(256), 10).compress("What did Alpha found and build?", [hit(1, passage, "")])
    assert out[0].text == f"Alpha founded the town.{GAP}Alpha later built the harbour."


def test_a_budget_needs_a_word() -> None:
    with pytest.raises(ValueError, match="at least one word"):
        ContextCompressor(FakeEmbedder(), 0)


def test_assistant_shows_the_model_the_compressed_passages_and_the_user_the_whole_ones(
    settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text(f"# Lakes\n{LAKE}\n")
    (corpus / "towers.md").write_text(f"# Towers\n{TOWER}\n")
    store = open_store(settings)
    with DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, store, docstore).ingest_paths([corpus], progress=False)
    settings = Settings(**{**settings.model_dump(), "context": {"order": "retrieval", "budget_words": 14}})
    generator = FakeGenerator(["Lake Baikal is 1,642 metres deep [1]."])
    bot = Assistant(settings, embedder=fake_embedder, generator=generator, store=store)
    try:
        answer = bot.ask("How deep is Lake Baikal?")
    finally:
        bot.close()
    prompt = generator.calls[0][-1].content
    assert "1,642 metres deep" in prompt and "Seals live in the lake" not in prompt
    assert "Seals live in the lake" in answer.citations[0].hit.text  # the sources panel shows the whole passage
    assert not answer.unsupported
    assert "compress" in [s.name for s in answer.trace.stages]
