from __future__ import annotations

import pytest

from assistant.types import Document
from ingestion.splitter import PassageSplitter


def doc(text: str, **metadata: object) -> Document:
    return Document("d1", "/tmp/d1.md", "D1", text, dict(metadata))


def test_default_init() -> None:
    splitter = PassageSplitter()
    assert splitter.chunk_size == 220 and splitter.chunk_overlap == 30


@pytest.mark.parametrize("size,overlap", [(4, 0), (100, 100), (100, -1)])
def test_invalid_init(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        PassageSplitter(size, overlap)


def test_passages_slice_the_original_text_exactly() -> None:
    text = "  First sentence here.  Second one follows!\n\nA new paragraph? Yes.  "
    passages = PassageSplitter(chunk_size=8, chunk_overlap=0, count_tokens=lambda s: len(s.split())).split(doc(text))
    assert passages, "expected passages"
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert p.text == p.text.strip()
    assert [p.id for p in passages] == [f"d1:{i}" for i in range(len(passages))]


def test_packs_sentences_up_to_the_size_with_overlap() -> None:
    sentences = [f"Sentence number {i} is here." for i in range(10)]  # 5 words each
    text = " ".join(sentences)
    splitter = PassageSplitter(chunk_size=15, chunk_overlap=5, count_tokens=lambda s: len(s.split()))
    passages = splitter.split(doc(text))
    assert all(len(p.text.split()) <= 15 for p in passages)
    # consecutive passages share exactly one 5-word sentence
    for a, b in zip(passages, passages[1:]):
        assert a.text.split(". ")[-1].rstrip(".") in b.text
    covered = " ".join(p.text for p in passages)
    assert all(s in covered for s in sentences)


def test_long_sentence_is_cut_at_words() -> None:
    text = " ".join(f"w{i}" for i in range(50))
    passages = PassageSplitter(chunk_size=10, chunk_overlap=0, count_tokens=lambda s: len(s.split())).split(doc(text))
    assert [len(p.text.split()) for p in passages] == [10] * 5


def test_sections_start_new_passages_and_carry_headings() -> None:
    text = "# Intro\nShort intro.\n# Usage\nRun the tool."
    usage = text.index("# Usage")
    passages = PassageSplitter(count_tokens=lambda s: len(s.split())).split(
        doc(text, sections=[[0, "Intro"], [usage, "Usage"]])
    )
    assert [p.heading for p in passages] == ["Intro", "Usage"]
    assert passages[1].text.startswith("# Usage")


def test_a_heading_without_body_joins_the_next_part_never_a_passage_alone() -> None:
    text = "# Kelvaro Lantern Festival\n\n## Tickets\nA ticket costs 12 euros.\n## Boats\nBoats sail at dusk."
    tickets, boats = text.index("## Tickets"), text.index("## Boats")
    passages = PassageSplitter(count_tokens=lambda s: len(s.split())).split(
        doc(text, sections=[[0, "Kelvaro Lantern Festival"], [tickets, "Tickets"], [boats, "Boats"]])
    )
    assert [p.heading for p in passages] == ["Kelvaro Lantern Festival › Tickets", "Boats"]
    assert passages[0].text == text[: boats - 1] and passages[0].start == 0  # the heading's text joins the body
    assert all(text[p.start : p.end] == p.text for p in passages)


def test_trailing_heading_is_dropped_and_a_headings_only_document_kept() -> None:
    text = "# Notes\nSome text here.\n# Empty"
    empty = text.index("# Empty")
    passages = PassageSplitter().split(doc(text, sections=[[0, "Notes"], [empty, "Empty"]]))
    assert [p.heading for p in passages] == ["Notes"]
    only = PassageSplitter().split(doc("# Title\n## Subtitle", sections=[[0, "Title"], [8, "Subtitle"]]))
    assert [(p.text, p.heading) for p in only] == [("# Title\n## Subtitle", "Title › Subtitle")]


def test_pages_map_to_passages() -> None:
    text = "Page one text.\n\nPage two text."
    second = text.index("Page two")
    passages = PassageSplitter(chunk_size=8, chunk_overlap=0, count_tokens=lambda s: len(s.split())).split(
        doc(text, pages=[[0, second - 2, 1], [second, len(text), 2]])
    )
    assert [p.page for p in passages] == [1, 2]


def test_empty_text_gives_no_passages() -> None:
    assert PassageSplitter().split(doc("   \n  ")) == []
