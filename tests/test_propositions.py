from __future__ import annotations

import json

import pytest

from assistant.models.fake import FakeGenerator
from assistant.types import Document, Passage
from ingestion.propositions import (
    DeterministicExtractor,
    LLMPropositionizer,
    NoExtractor,
    PropositionSpan,
    build_extractor,
    create_extractor,
    parse_json_list,
)

PREFIX = "Intro text that belongs to an earlier passage.\n\n"


def make(text: str, title: str = "Eiffel Tower", heading: str | None = None, *, doc_text: str | None = None):
    """A document holding ``text`` after a prefix, and the passage for ``text`` (start > 0)."""
    full = doc_text if doc_text is not None else PREFIX + text
    start = full.index(text) if text else len(full)
    document = Document("d1", "/tmp/eiffel.md", title, full)
    return Passage("d1:1", "d1", text, start, start + len(text), heading=heading), document


def texts(spans: list[PropositionSpan]) -> list[str]:
    return [s.text for s in spans]


# ---------------------------------------------------------------- deterministic


def test_rules_default_init_and_name() -> None:
    assert DeterministicExtractor().name == "rules"


def test_compound_sentence_is_split_into_two() -> None:
    passage, document = make("The Broncos won the title in 2016, and the Panthers lost the final game.")
    assert texts(DeterministicExtractor().extract(passage, document)) == [
        "The Broncos won the title in 2016.",
        "The Panthers lost the final game.",
    ]


@pytest.mark.parametrize(
    "sentence",
    [
        "The tower was designed by Eiffel's company, and was built in 1889.",  # no subject on the right
        "It has three levels; two have restaurants.",  # right side too short
        "Visitors saw (the tower was new, and the crowds were huge in May) many things.",  # in brackets
        "The tower, which was built in 1889 for the fair, is tall.",  # relative clause
        "The menu offered apples, oranges, and many other kinds of fruit.",  # a list, no verb on the right
    ],
)
def test_conservative_clause_splitting_keeps_these_whole(sentence: str) -> None:
    passage, document = make(sentence, title="Other")
    assert len(DeterministicExtractor().extract(passage, document)) == 1


def test_semicolon_split() -> None:
    passage, document = make("The tower was painted in 1968; however, the paint faded within ten years.", title="X")
    assert texts(DeterministicExtractor().extract(passage, document)) == [
        "The tower was painted in 1968.",
        "The paint faded within ten years.",
    ]


def test_leading_it_and_its_become_the_title_subject() -> None:
    passage, document = make(
        "The Eiffel Tower is a lattice tower in Paris. It was completed in 1889. Its height is 330 metres."
    )
    assert texts(DeterministicExtractor().extract(passage, document)) == [
        "The Eiffel Tower is a lattice tower in Paris.",
        "The Eiffel Tower was completed in 1889.",
        "The Eiffel Tower's height is 330 metres.",
    ]


def test_title_is_written_as_the_text_writes_it() -> None:
    passage, document = make("# Eiffel Tower\nEiffel Tower tickets are sold online. It opens at nine daily.")
    assert texts(DeterministicExtractor().extract(passage, document))[-1] == "Eiffel Tower opens at nine daily."
    passage, document = make("The Normans were a people in France. They descended from Norse raiders.", "Normans")
    got = texts(DeterministicExtractor().extract(passage, document))
    assert got[-1] == "The Normans descended from Norse raiders."


def test_subject_from_the_first_sentence_when_the_title_is_absent() -> None:
    text = "Marie Curie was a physicist. She won two Nobel Prizes. Her notebooks are radioactive."
    passage, document = make(text, title="notes.md")
    assert texts(DeterministicExtractor().extract(passage, document)) == [
        "Marie Curie was a physicist.",
        "Marie Curie won two Nobel Prizes.",
        "Marie Curie's notebooks are radioactive.",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Gustave Eiffel designed the Eiffel Tower. He was an engineer.",  # title vs. another subject
        "It is a tower. It was completed in 1889.",  # the first sentence opens with a pronoun
        "The Eiffel Tower is in Paris. Gustave Eiffel built it quickly. He was an engineer.",  # topic moved
        "The Eiffel Tower is in Paris. They were happy about it.",  # plural vs. singular
        "The Eiffel Tower is in Paris. It is believed that the site was chosen in 1886.",  # expletive
        "The Eiffel Tower is in Paris. This design was new in 1889.",  # determiner
    ],
)
def test_ambiguous_or_unsafe_pronouns_are_left_alone(text: str) -> None:
    passage, document = make(text)
    got = texts(DeterministicExtractor().extract(passage, document))
    assert got[-1] == text.rsplit(". ", 1)[-1]


def test_offsets_slice_the_document_to_the_source_span() -> None:
    text = "The Eiffel Tower is in Paris. It was completed in 1889, and the tower opened to visitors in May."
    passage, document = make(text)
    spans = DeterministicExtractor().extract(passage, document)
    assert passage.start > 0
    assert [document.text[s.start : s.end] for s in spans] == [
        "The Eiffel Tower is in Paris.",
        "It was completed in 1889",
        "the tower opened to visitors in May.",
    ]


def test_heading_and_bullet_markers_are_stripped() -> None:
    text = (
        "# Eiffel Tower\n\n- The tower has three visitor levels.\n* 1. The top level is 276 m high\n"
        "> Tickets are sold online."
    )
    passage, document = make(text, title="Other")
    spans = DeterministicExtractor().extract(passage, document)
    assert texts(spans) == [
        "The tower has three visitor levels.",
        "The top level is 276 m high.",
        "Tickets are sold online.",
    ]
    assert document.text[spans[1].start : spans[1].end] == "The top level is 276 m high"


def test_wrapped_lines_join_and_short_fragments_drop() -> None:
    text = "The tower was built\nfor the 1889 fair. Yes. Very tall! Gustave Eiffel's company built it."
    passage, document = make(text, title="Other")
    assert texts(DeterministicExtractor().extract(passage, document)) == [
        "The tower was built for the 1889 fair.",
        "Gustave Eiffel's company built it.",
    ]


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    passage, document = make("Dr. J. R. Smith visited the U.S. in 1920. He liked it e.g. the food.", title="Other")
    got = texts(DeterministicExtractor().extract(passage, document))
    assert got[0] == "Dr. J. R. Smith visited the U.S. in 1920."


@pytest.mark.parametrize(
    "text", ["", "  \n\n ", "# Eiffel Tower", "## Only a heading\n", "...", ";;; , and ,", "((( “odd", "é ü 中文"]
)
def test_odd_input_never_raises(text: str) -> None:
    passage, document = make(text)
    spans = DeterministicExtractor().extract(passage, document)
    assert len(spans) <= 1
    assert LLMPropositionizer(FakeGenerator()).extract(passage, document) == spans  # model, then the rules


def test_extract_many_matches_extract() -> None:
    items = [make("The Eiffel Tower is in Paris. It is tall and painted brown."), make("")]
    extractor = DeterministicExtractor()
    assert extractor.extract_many(items) == [extractor.extract(p, d) for p, d in items]


# ---------------------------------------------------------------- LLM

PASSAGE_TEXT = "The Eiffel Tower is a lattice tower in Paris. It was completed in 1889."


def llm_case(*replies: str, retries: int = 1) -> tuple[LLMPropositionizer, FakeGenerator, Passage, Document]:
    generator = FakeGenerator(list(replies))
    passage, document = make(PASSAGE_TEXT, heading="History")
    return LLMPropositionizer(generator, retries=retries), generator, passage, document


def test_llm_clean_json_list() -> None:
    reply = json.dumps(["The Eiffel Tower is a lattice tower in Paris.", "The Eiffel Tower was completed in 1889."])
    llm, generator, passage, document = llm_case(reply)
    spans = llm.extract(passage, document)
    assert texts(spans) == json.loads(reply)
    assert document.text[spans[0].start : spans[0].end] == "The Eiffel Tower is a lattice tower in Paris"  # verbatim
    assert document.text[spans[1].start : spans[1].end] == "It was completed in 1889."  # best sentence
    assert llm.stats == {"llm_ok": 1, "retried": 0, "fell_back": 0, "ungrounded": 0}
    assert len(generator.calls) == 1


def test_llm_list_in_fences_with_chatter() -> None:
    props = ["The Eiffel Tower is in Paris.", "The Eiffel Tower is a lattice tower."]
    reply = f"Sure! Here they are:\n```json\n{json.dumps(props)}\n```\nHope this helps [1]."
    llm, _, passage, document = llm_case(reply)
    assert texts(llm.extract(passage, document)) == props


def test_llm_invalid_then_valid_on_retry() -> None:
    llm, generator, passage, document = llm_case("I cannot help.", '["The Eiffel Tower was completed in 1889."]')
    assert texts(llm.extract(passage, document)) == ["The Eiffel Tower was completed in 1889."]
    assert llm.stats["retried"] == 1 and llm.stats["llm_ok"] == 1 and llm.stats["fell_back"] == 0
    retry = generator.calls[1]
    assert [m.role for m in retry] == ["user", "assistant", "user"] and "JSON list" in retry[-1].content


def test_llm_invalid_twice_falls_back_to_the_rules() -> None:
    llm, generator, passage, document = llm_case('["unterminated', "{not json}")
    assert llm.extract(passage, document) == DeterministicExtractor().extract(passage, document)
    assert llm.stats == {"llm_ok": 0, "retried": 1, "fell_back": 1, "ungrounded": 0}
    assert len(generator.calls) == 2


def test_llm_prompt_holds_the_passage_title_and_heading() -> None:
    llm, generator, passage, document = llm_case('["The Eiffel Tower is in Paris."]')
    llm.extract(passage, document)
    prompt = generator.calls[0][-1].content
    assert PASSAGE_TEXT in prompt and "Title: Eiffel Tower." in prompt and "Section: History." in prompt
    assert "Decompose the \"Content\" into clear and simple propositions" in prompt


@pytest.mark.parametrize(
    "reply",
    [
        "[]",
        json.dumps([f"The Eiffel Tower has level {i}." for i in range(51)]),  # over 50 items
        json.dumps(["The Eiffel Tower " + "is very tall " * 40]),  # over 400 characters
        json.dumps(["The Eiffel Tower is in Paris.", "  "]),  # an empty item
        json.dumps(["Hares were frequently seen in gardens in spring."]),  # copied example: ungrounded
        "[1, 2, 3]",
    ],
)
def test_llm_invalid_replies_fall_back(reply: str) -> None:
    llm, _, passage, document = llm_case(reply, retries=0)
    assert llm.extract(passage, document) == DeterministicExtractor().extract(passage, document)
    assert llm.stats["fell_back"] == 1


def test_llm_drops_ungrounded_items_and_duplicates() -> None:
    reply = json.dumps(["The Eiffel Tower is in Paris.", "Hares laid colored eggs.", "The Eiffel Tower is in Paris."])
    llm, _, passage, document = llm_case(reply)
    spans = llm.extract(passage, document)
    assert texts(spans) == ["The Eiffel Tower is in Paris."]
    assert document.text[spans[0].start : spans[0].end] == "The Eiffel Tower is a lattice tower in Paris."
    assert llm.stats["ungrounded"] == 1


def test_llm_truncated_list_keeps_complete_items() -> None:
    llm, _, passage, document = llm_case('["The Eiffel Tower is in Paris.", "The Eiffel Tower was compl')
    assert texts(llm.extract(passage, document)) == ["The Eiffel Tower is in Paris."]


def test_llm_unlocatable_proposition_gets_the_passage_span() -> None:
    llm, _, passage, document = llm_case('["The lattice tower in Paris was completed in 1889."]')
    (span,) = llm.extract(passage, document)
    assert (span.start, span.end) == (passage.start, passage.end)


def test_llm_empty_passage_calls_no_model() -> None:
    generator = FakeGenerator()
    passage, document = make("")
    assert LLMPropositionizer(generator).extract(passage, document) == []
    assert generator.calls == []


@pytest.mark.parametrize("kwargs", [{"max_new_tokens": 0}, {"retries": -1}])
def test_llm_invalid_init(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        LLMPropositionizer(FakeGenerator(), **kwargs)


def test_llm_default_init() -> None:
    llm = LLMPropositionizer(FakeGenerator())
    assert llm.name == "llm" and llm.retries == 1 and llm.max_new_tokens == 512
    assert isinstance(llm.fallback, DeterministicExtractor)


def test_parse_json_list() -> None:
    assert parse_json_list('see [1] then ["a", "b"]') == ["a", "b"]
    assert parse_json_list('{"propositions": ["a"]}') == ["a"]
    assert parse_json_list('["a", "b\\"c", "d') == ["a", 'b"c']
    assert parse_json_list("no list here") is None
    assert parse_json_list("") is None


# ---------------------------------------------------------------- factory


def test_create_extractor_choices() -> None:
    assert isinstance(create_extractor("rules"), DeterministicExtractor)
    assert isinstance(create_extractor(" OFF "), NoExtractor)
    passage, document = make(PASSAGE_TEXT)
    assert create_extractor("off").extract(passage, document) == []
    calls = []
    llm = create_extractor("llm", lambda: calls.append(1) or FakeGenerator())
    assert isinstance(llm, LLMPropositionizer) and calls == [1]


def test_create_extractor_errors() -> None:
    with pytest.raises(ValueError, match="rules, llm, off"):
        create_extractor("spacy")
    with pytest.raises(ValueError, match="generator"):
        create_extractor("llm")


@pytest.mark.parametrize("name,kind", [("rules", DeterministicExtractor), ("llm", LLMPropositionizer), ("off", None)])
def test_build_extractor_from_settings(settings, name: str, kind: type | None) -> None:
    configured = settings.model_copy(
        update={
            "ingestion": settings.ingestion.model_copy(update={"propositions": name}),
            "models": settings.models.model_copy(update={"generator": "fake"}),
        }
    )
    extractor = build_extractor(configured)
    assert extractor is None if kind is None else isinstance(extractor, kind)
