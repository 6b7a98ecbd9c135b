"""Making memory units (memory/units.py) and the LLM filter (memory/filter.py)."""

from __future__ import annotations

import pytest

from assistant.models.base import Generator
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.types import Exchange, MemoryUnit
from memory.filter import llm_filter
from memory.units import (
    extractive_summary,
    fact_units,
    keywords,
    llm_keywords,
    llm_summary,
    rule_keywords,
    summary_id,
    summary_unit,
    turn_unit,
)


class FailingGenerator(Generator):
    name = "failing"

    def _stream(self, messages, max_new_tokens, temperature):  # type: ignore[no-untyped-def]
        raise RuntimeError("model crashed")
        yield ""


def test_turn_unit_keeps_the_exchange_verbatim() -> None:
    unit = turn_unit("ana", "s1", "t1", Exchange(" What is BM25? ", "A ranking function."), 5.0)
    assert unit == MemoryUnit("turn-t1", "turn", "User: What is BM25?\nAssistant: A ranking function.", "s1", ("t1",), 5.0, "ana")


def test_fact_unit_holds_names_numbers_dates_and_content_words() -> None:
    exchange = Exchange("When was the Eiffel Tower in Paris built?", "It opened on 31 March 1889 and is 330 metres tall.")
    [fact] = fact_units("ana", "s1", "t1", exchange, 5.0)
    assert (fact.id, fact.granularity, fact.turn_ids, fact.user_id) == ("fact-t1", "fact", ("t1",), "ana")
    assert fact.text == (
        "Keywords: Eiffel Tower; Paris; built; 31 March 1889; 330 metres — from: When was the Eiffel Tower in Paris built?"
    )


def test_keywords_details() -> None:
    assert keywords("My cat is called Miso") == ["cat", "Miso"]  # stopwords and grammar capitals dropped
    assert keywords("I moved to New York City on 2024-03-05 with 3 kids") == ["moved", "New York City", "2024-03-05", "3 kids"]
    assert keywords("Nice name! Great.", content_words=False) == []
    assert keywords("I love paris and Paris") == ["love", "paris"]  # case-insensitive repeats


def test_a_turn_without_salient_words_has_no_fact() -> None:
    assert fact_units("ana", "s1", "t1", Exchange("hi", "Hello!"), 5.0) == []


def test_fact_source_is_cut_to_120_characters() -> None:
    [fact] = fact_units("ana", "s1", "t1", Exchange("Zanzibar " * 40, "ok"), 5.0)
    assert fact.text.endswith("from: " + ("Zanzibar " * 40)[:120])


def test_summary_id_is_one_per_user_and_session() -> None:
    assert summary_id("ana", "s1") == summary_id("ana", "s1") != summary_id("ana", "s2") != summary_id("bob", "s1")
    unit = summary_unit("ana", "s1", "gist", ["t1", "t2"], 5.0)
    assert (unit.id, unit.granularity, unit.turn_ids) == (summary_id("ana", "s1"), "summary", ("t1", "t2"))
    assert unit.id.isascii() and unit.id.replace("-", "").isalnum()


def test_extractive_summary_keeps_central_sentences_in_order() -> None:
    texts = ["The cat sleeps on the mat. The cat eats fish.", "Quantum chromodynamics is hard!\nThe cat and the mat are grey."]
    assert extractive_summary(texts, FakeEmbedder(64), max_sentences=2) == "The cat sleeps on the mat.\nThe cat and the mat are grey."
    assert extractive_summary(["One. Two."], FakeEmbedder(64)) == "One.\nTwo."  # short: everything
    assert extractive_summary([], FakeEmbedder(64)) == ""
    fish = FakeEmbedder(64).embed(["fish"])[0]
    assert extractive_summary(texts, FakeEmbedder(64), max_sentences=1, centre=fish) == "The cat eats fish."
    with pytest.raises(ValueError, match="max_sentences"):
        extractive_summary(texts, FakeEmbedder(64), max_sentences=0)


def test_llm_summary_uses_the_reply_or_falls_back() -> None:
    gen = FakeGenerator(["The user has a cat called Miso and lives in Lisbon.", "Too short."])
    assert llm_summary(["User: hi"], gen, lambda: "fallback") == "The user has a cat called Miso and lives in Lisbon."
    assert "User: hi" in gen.calls[0][0].content
    assert llm_summary(["User: hi"], gen, lambda: "fallback") == "fallback"  # under five words
    assert llm_summary(["User: hi"], FailingGenerator(), lambda: "fallback") == "fallback"


def test_llm_keywords_parse_the_list_or_fall_back() -> None:
    exchange = Exchange("My cat Miso turned 3 in May.", "Happy birthday, Miso!")
    gen = FakeGenerator(["\nMiso; cat; 3 years; May; \"birthday\"", "The user talks about their cat and its birthday party in May this year"])
    assert llm_keywords(exchange, gen, info := {}) == ["Miso", "cat", "3 years", "May", "birthday"] and "fallback" not in info
    assert "User: My cat Miso turned 3 in May." in gen.calls[0][0].content
    assert llm_keywords(exchange, gen, info := {}) is None and "malformed" in info["fallback"]  # a sentence, not keywords
    assert llm_keywords(exchange, FailingGenerator(), info := {}) is None and "failed" in info["fallback"]
    [fact] = fact_units("ana", "s1", "t1", exchange, 5.0, ["Miso", "cat"])
    assert fact.text.startswith("Keywords: Miso; cat — from: My cat Miso")
    assert fact_units("ana", "s1", "t1", exchange, 5.0) == fact_units("ana", "s1", "t1", exchange, 5.0, rule_keywords(exchange))
    assert fact_units("ana", "s1", "t1", exchange, 5.0, []) == []


def units(*texts: str) -> list[MemoryUnit]:
    return [MemoryUnit(f"u{i}", "turn", t, "s", (f"t{i}",), 0.0, "ana") for i, t in enumerate(texts)]


def test_llm_filter_keeps_the_numbered_units() -> None:
    found = units("cat Miso", "hiking", "cat food")
    info: dict = {}
    assert [u.id for u in llm_filter("cat?", found, FakeGenerator(["\n1, 3"]), info)] == ["u0", "u2"]
    assert llm_filter("cat?", found, FakeGenerator(["None of them."]), {}) == []
    kept = llm_filter("cat?", found, FakeGenerator(["I think so"]), info := {})
    assert kept == found and "malformed" in info["fallback"]
    assert llm_filter("cat?", found, FailingGenerator(), {}) == found
