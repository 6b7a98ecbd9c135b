"""The Assistant with fake models over a real embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.answering import is_abstention, unquote_header
from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.prompts import ABSTAIN_TEXT, clean_answer
from assistant.types import Answer, Hit
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.store import open_store


@pytest.fixture
def assistant(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    (corpus / "towers.md").write_text("# Towers\nThe Eiffel Tower is in Paris and is 330 metres tall.\n")
    store = open_store(settings)
    with DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, store, docstore).ingest_paths([corpus], progress=False)
    # Retrieval order keeps source numbers predictable here; ordering has its own tests below.
    settings = settings.model_copy(update={"context": settings.context.model_copy(update={"order": "retrieval"})})
    bot = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=store)
    yield bot
    bot.close()


def test_default_init_loads_nothing(settings: Settings) -> None:
    bot = Assistant(settings)
    assert bot._embedder is None and bot._generator is None and bot._store is None


def test_answer_cites_the_source(assistant: Assistant, fake_generator: FakeGenerator) -> None:
    fake_generator.enqueue("1,642 metres [1]")
    answer = assistant.ask("How deep is Lake Baikal?")
    assert not answer.abstained
    assert answer.text == "1,642 metres [1]"
    assert [c.n for c in answer.citations] == [1]
    assert "Baikal" in answer.citations[0].hit.text
    prompt = fake_generator.calls[0][-1].content
    assert "[1] Lakes: # Lakes Lake Baikal" in prompt and "Question: How deep is Lake Baikal?" in prompt
    assert [s.name for s in answer.trace.stages] == ["embed_query", "metadata", "search", "legs", "relevance_gate", "order", "generate", "cite"]


def test_invalid_citation_dropped_and_uncited_answer_attributed(assistant: Assistant, fake_generator) -> None:
    fake_generator.enqueue("The answer is: 1,642 metres [9]")
    answer = assistant.ask("How deep is Lake Baikal?")
    cite = answer.trace.stages[-1].details
    assert cite["dropped"] == [9] and cite["attributed"] is True
    assert answer.text.startswith("1,642 metres [")
    assert "Baikal" in answer.citations[0].hit.text


def test_model_abstention_is_recognised(assistant: Assistant, fake_generator) -> None:
    fake_generator.enqueue("The sources do not mention that.")
    answer = assistant.ask("Who designed Lake Baikal?")
    assert answer.abstained and answer.text == ABSTAIN_TEXT and not answer.citations


def test_irrelevant_question_abstains_without_generating(assistant: Assistant, fake_generator) -> None:
    answer = assistant.ask("quantum chromodynamics gluon")
    assert answer.abstained and answer.text == ABSTAIN_TEXT
    assert fake_generator.calls == []
    assert answer.trace.stages[-1].details["passed"] is False


def test_empty_index_abstains(settings: Settings, fake_embedder, fake_generator) -> None:
    bot = Assistant(settings, embedder=fake_embedder, generator=fake_generator)
    try:
        answer = bot.ask("anything?")
    finally:
        bot.close()
    assert answer.abstained and answer.contexts == ()


def test_stream_yields_pieces_then_the_answer(assistant: Assistant, fake_generator) -> None:
    fake_generator.enqueue("It is 330 metres tall [2]")
    events = list(assistant.stream("How tall is the Eiffel Tower in Paris?"))
    assert events[-1].answer is not None and all(e.answer is None for e in events[:-1])
    assert "".join(e.text for e in events) == "It is 330 metres tall [2]"
    # Each stage is reported once, as it finishes, and before the text it leads to.
    stages = [e.stage.name for e in events if e.stage is not None]
    assert stages == [s.name for s in events[-1].answer.trace.stages]
    first_text = next(i for i, e in enumerate(events) if e.text)
    assert [e.stage.name for e in events[:first_text] if e.stage][-1] == "order"
    assert all(sum(x is not None and x != "" for x in (e.text, e.stage, e.answer)) == 1 for e in events)


def test_empty_question_is_an_error(assistant: Assistant) -> None:
    with pytest.raises(ValueError, match="empty"):
        assistant.ask("   ")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("", True),
        ("The documents don't say.", True),
        ("I cannot answer that.", True),
        ("[1]", True),  # a citation with no answer is no answer
        ("[1][2].", True),
        ("Paris [1]", False),
        ("1998", False),
    ],
)
def test_is_abstention(text: str, expected: bool) -> None:
    assert is_abstention(text) is expected


def test_unquote_header_moves_a_copied_source_header_to_a_trailing_citation() -> None:
    hits = [Hit("a", "x", 1.0, "a.md", "p1", "d1", "Lake Baikal"), Hit("b", "y", 1.0, "b.md", "p1", "d2", "Oxygen")]
    assert unquote_header("[2] Oxygen: Plants release it. ", hits) == "Plants release it. [2]"
    assert unquote_header("[1] 1,642 metres", hits) == "1,642 metres [1]"
    assert unquote_header("It is 1,642 metres [1]", hits) == "It is 1,642 metres [1]"
    assert unquote_header("[7] Elsewhere", hits) == "[7] Elsewhere"  # not a source: left for strip_invalid


def test_clean_answer() -> None:
    assert clean_answer("The answer is: paris [1]") == "Paris [1]"
    assert clean_answer("Paris") == "Paris"


def test_components_are_built_once_when_the_warm_up_and_a_question_race(settings, monkeypatch) -> None:
    import threading
    import time

    import assistant.models.registry as registry
    from assistant.assistant import Assistant
    from assistant.models.fake import FakeEmbedder

    built: list[int] = []

    def slow_embedder(settings):  # as assembling and converting a bundled model takes a while
        built.append(1)
        time.sleep(0.3)
        return FakeEmbedder(64)

    monkeypatch.setattr(registry, "create_embedder", slow_embedder)
    a = Assistant(settings)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(a.embedder)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(e) for e in seen}) == 1


class SlowLoadingGenerator(FakeGenerator):
    """A fake with a `load` that records the thread it ran in (and can fail, as a missing file would)."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.loaded_in: list[str] = []

    def load(self) -> None:
        import threading

        self.loaded_in.append(threading.current_thread().name)
        if self.fail:
            raise OSError("model file missing")


def test_the_generator_preloads_in_a_background_thread(settings: Settings, fake_embedder) -> None:
    generator = SlowLoadingGenerator()
    Assistant(settings, embedder=fake_embedder, generator=generator).preload_generator().join()
    assert generator.loaded_in == ["tessera-generator-load"]


def test_a_failed_preload_is_left_for_the_answer_to_report(settings: Settings, fake_embedder) -> None:
    generator = SlowLoadingGenerator(fail=True)
    thread = Assistant(settings, embedder=fake_embedder, generator=generator).preload_generator()
    thread.join()
    assert generator.loaded_in and not thread.is_alive()  # no exception escaped the thread


def test_the_relevance_gate_uses_the_embedders_floor_unless_a_setting_names_one(
    settings: Settings, fake_embedder, fake_generator
) -> None:
    class CompressedScale(FakeEmbedder):
        relevance_floor = 0.9  # a model whose unrelated texts score high (as E5's do)

    assert Assistant(settings, embedder=fake_embedder, generator=fake_generator).min_relevance == 0.25
    assert Assistant(settings, embedder=CompressedScale(), generator=fake_generator).min_relevance == 0.9
    pinned = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"min_relevance": 0.4})})
    assert Assistant(pinned, embedder=CompressedScale(), generator=fake_generator).min_relevance == 0.4
