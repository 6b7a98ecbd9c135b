"""The pipeline as objects: built once from the settings, checked when built, printed, traced, recombined."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.prompts import ABSTAIN_TEXT
from assistant.types import Trace
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.pipeline import Pipeline, PipelineError, Stage, Turn
from retrievers.store import open_store


class Writes(Stage):
    def __init__(self, name: str, reads: tuple[str, ...] = (), writes: tuple[str, ...] = ()) -> None:
        self.name, self.reads, self.writes = name, reads, writes
        self.ran = 0

    def run(self, turn: Turn) -> None:
        self.ran += 1
        with turn.trace.stage(self.name):
            pass


@pytest.fixture
def indexed(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    store = open_store(settings)
    with DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, store, docstore).ingest_paths([corpus], progress=False)
    yield store
    store.close()


def test_a_stage_reading_what_nothing_before_it_writes_is_refused_when_built() -> None:
    with pytest.raises(PipelineError, match=r"stage 'search' reads legs.*before it: embed"):
        Pipeline([Writes("embed", ("question",), ("vectors",)), Writes("search", ("legs", "vectors"), ("hits",))])
    with pytest.raises(PipelineError, match="a Turn does not have"):
        Pipeline([Writes("typo", (), ("hitz",))])


def test_without_takes_stages_out_and_checks_again() -> None:
    pipeline = Pipeline([Writes("embed", (), ("vectors",)), Writes("gate", ("vectors",), ("relevant",)), Writes("cite", ("vectors",))])
    assert pipeline.without("gate").names == ("embed", "cite")
    with pytest.raises(PipelineError, match="'gate' reads vectors"):
        pipeline.without("embed")
    with pytest.raises(PipelineError, match="no stage named gat"):
        pipeline.without("gat")


def test_a_stage_that_answers_ends_the_turn() -> None:
    class Abstain(Writes):
        def run(self, turn: Turn) -> list[str]:
            super().run(turn)
            turn.answer = object()  # type: ignore[assignment]
            return ["The documents don't say."]

    after = Writes("generate")
    events = list(Pipeline([Abstain("gate", (), ("answer",)), after]).run(Turn("q")))
    assert [e.text for e in events if e.text] == ["The documents don't say."]
    assert events[-1].answer is not None and after.ran == 0


def test_the_assistant_builds_its_pipeline_once_and_traces_it(
    settings: Settings, indexed, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    bot = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=indexed)
    pipeline = bot.pipeline
    assert pipeline is bot.pipeline  # built once, not per question
    assert bot.retrieval.stages == pipeline.stages[: len(bot.retrieval.stages)]  # search() runs the same objects
    fake_generator.enqueue("1,642 metres [1]")
    answer = bot.ask("How deep is Lake Baikal?")
    assert answer.trace.pipeline == pipeline.names
    recorded = [s.name for s in answer.trace.stages]  # no rewrite without a conversation; query_legs records nothing
    assert recorded == [n for n in pipeline.names if n in recorded] and {"search", "generate", "cite"} <= set(recorded)


def test_an_ablation_is_a_pipeline_without_the_stage(
    settings: Settings, indexed, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    gated = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=indexed)
    assert gated.ask("quantum chromodynamics gluon").text == ABSTAIN_TEXT and fake_generator.calls == []
    ungated = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=indexed, without=["relevance_gate"])
    fake_generator.enqueue("Gluons bind quarks.")
    answer = ungated.ask("quantum chromodynamics gluon")
    assert len(fake_generator.calls) == 1 and "relevance_gate" not in answer.trace.pipeline
    assert "relevance_gate" not in [s.name for s in answer.trace.stages]


def test_an_ablation_that_cannot_run_says_which_stage_lacks_what(settings: Settings) -> None:
    with pytest.raises(PipelineError, match="'query_legs' reads .*dense"):
        Assistant(settings, without=["embed_query"]).pipeline


def test_search_traces_the_retrieval_pipeline(settings: Settings, indexed, fake_embedder: FakeEmbedder) -> None:
    bot = Assistant(settings, embedder=fake_embedder, store=indexed)
    trace = Trace()
    hits = bot.search("How deep is Lake Baikal?", trace)
    assert hits and trace.pipeline == bot.retrieval.names and "generate" not in trace.pipeline
