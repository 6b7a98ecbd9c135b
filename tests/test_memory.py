"""`Memory` end to end on fakes and a real store (memory/memory.py): remember, recall, forget, restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.types import Exchange, MemoryUnit, Trace, to_dict
from memory import Memory, MemoryRecords, Recall
from retrievers.client_store import ClientStore
from retrievers.store import EdgeStore, Store


def open_memory(settings: Settings, embedder: FakeEmbedder, path: Path, store: Store | None = None, **kw) -> Memory:
    store = store or EdgeStore(path / "qdrant-memory", "memory")
    return Memory(settings, embedder, store, MemoryRecords(path / "memory.sqlite3"), **kw)


@pytest.fixture(params=["edge", "client"])
def memory(request: pytest.FixtureRequest, settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> Iterator[Memory]:
    store = ClientStore(QdrantClient(":memory:"), "memory") if request.param == "client" else None
    with open_memory(settings, fake_embedder, tmp_path, store) as m:
        yield m


def texts(recall: Recall) -> str:
    return "\n".join(u.text for u in recall.units)


def test_remember_writes_three_granularities_and_one_summary_per_session(memory: Memory) -> None:
    first = memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Miso is a lovely name."))
    assert [u.granularity for u in first] == ["turn", "fact", "summary"]
    assert all(u.user_id == "ana" and u.session_id == "s1" for u in first)
    second = memory.remember("ana", "s1", Exchange("I live in Lisbon.", "Lisbon is sunny."))
    summaries = [u for u in memory.units("ana") if u.granularity == "summary"]
    assert len(summaries) == 1 and summaries[0].id == first[2].id == second[2].id  # replaced, not added
    assert summaries[0].turn_ids == first[0].turn_ids + second[0].turn_ids
    assert "Lisbon" in summaries[0].text and "Miso" in summaries[0].text
    assert memory.store.count() == 5  # 2 turns + 2 facts + 1 summary
    assert memory.history("ana", "s1") == [Exchange("My cat is called Miso.", "Miso is a lovely name."), Exchange("I live in Lisbon.", "Lisbon is sunny.")]
    assert memory.sessions("ana")[0][:1] == ("s1",) and memory.sessions("ana")[0].turns == 2


class CountingEmbedder(FakeEmbedder):
    def __init__(self) -> None:
        super().__init__(64)
        self.texts = 0

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.texts += len(texts)
        return super().embed(texts)


def test_a_turn_costs_the_same_embeddings_however_long_the_session(settings: Settings, tmp_path: Path) -> None:
    embedder = CountingEmbedder()
    with open_memory(settings, embedder, tmp_path) as memory:
        per_turn = []
        for n in range(12):
            before = embedder.texts
            memory.remember("ana", "s1", Exchange(f"Fact number {n} is about topic{n}.", f"Noted topic{n}. Thanks."))
            per_turn.append(embedder.texts - before)
        # Turn, fact, summary, plus the old summary's 3 sentences and the new turn's 3: constant, not growing.
        assert per_turn[2:] == [3 + 3 + 3] * 10
        [summary] = [u for u in memory.units("ana") if u.granularity == "summary"]
        assert len(summary.turn_ids) == 12 and len(summary.text.splitlines()) == 3


def test_recall_records_the_router_in_the_trace(memory: Memory) -> None:
    memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Miso is a lovely name."))
    memory.remember("ana", "s1", Exchange("I enjoy hiking in the Alps.", "The Alps are beautiful."))
    trace = Trace()
    recall = memory.recall("ana", "s1", "what is my cat called?", trace)
    assert "Miso" in recall.units[0].text
    stage = trace.stages[-1]
    assert stage.name == "memory" and stage.seconds >= 0
    assert stage.details["chosen"] == list(recall.chosen) and recall.chosen
    assert set(stage.details["entropies"]) == {"turn", "fact", "summary"} == set(recall.entropies)
    assert stage.details["units"] == [u.id for u in recall.units]
    assert len(recall.units) <= 2 * memory.settings.memory.recall_k


def test_users_never_see_each_others_memories(memory: Memory) -> None:
    memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Miso is a lovely name."))
    memory.remember("bob", "s9", Exchange("I like hiking in the Alps.", "Sounds great."))
    trace = Trace()
    bob = memory.recall("bob", "s9", "what is my cat called?", trace)
    assert bob.units and all(u.user_id == "bob" for u in bob.units)
    assert "Miso" not in str(to_dict(trace)) and "Miso" not in texts(bob)
    assert "Miso" in texts(memory.recall("ana", "s2", "what is my cat called?"))
    assert memory.recall("carol", "s1", "what is my cat called?").units == ()


def test_a_new_session_recalls_an_earlier_one(memory: Memory) -> None:
    memory.remember("ana", "s1", Exchange("My sister Ana lives in Lisbon.", "Lisbon is lovely."))
    memory.remember("ana", "s1", Exchange("I am learning to play the guitar.", "Good luck with it!"))
    memory.remember("ana", "s2", Exchange("Recommend a book please.", "Try Dune."))
    recall = memory.recall("ana", "s2", "where does my sister live?")
    assert "Lisbon" in recall.units[0].text and recall.units[0].session_id == "s1"
    assert memory.history("ana", "s2") == [Exchange("Recommend a book please.", "Try Dune.")]


def test_forget_a_session_removes_records_and_vectors(memory: Memory) -> None:
    memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Miso is a lovely name."))
    memory.remember("ana", "s2", Exchange("I live in Lisbon.", "Lisbon is sunny."))
    memory.remember("bob", "s1", Exchange("My cat is called Tom.", "Nice."))
    assert memory.store.count() == 9
    assert memory.forget("ana", "s1") == 3
    assert memory.units("ana", "s1") == [] and memory.history("ana", "s1") == []
    assert memory.store.count() == 6
    assert "Miso" not in texts(memory.recall("ana", "s2", "what is my cat called?"))
    assert memory.forget("ana") == 3 and memory.sessions("ana") == [] and memory.store.count() == 3
    assert "Tom" in texts(memory.recall("bob", "s1", "what is my cat called?"))


def test_memory_survives_a_restart(settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    with open_memory(settings, fake_embedder, tmp_path) as memory:
        memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Miso is a lovely name."))
    with open_memory(settings, FakeEmbedder(64), tmp_path) as reopened:
        recall = reopened.recall("ana", "s2", "what is my cat called?")
        assert "Miso" in texts(recall)
        assert [s.session for s in reopened.sessions("ana")] == ["s1"]
        reopened.remember("ana", "s2", Exchange("I live in Lisbon.", "Lisbon is sunny."))
        assert len(reopened.units("ana")) == 6


def test_associated_units_join_the_recall(settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    settings.memory.recall_k, settings.memory.router = 1, "turn"
    with open_memory(settings, fake_embedder, tmp_path) as memory:
        for q, a in [("My cat is called Miso.", "Nice."), ("Miso likes tuna.", "Cats do.")]:
            memory.remember("ana", "s1", Exchange(q, a))
        links = memory.records.links_of(u.id for u in memory.units("ana"))
        assert any(links.values())
        recall = memory.recall("ana", "s1", "what is my cat called?")
        assert len(recall.units) == 2 and recall.units[0].granularity == "turn"  # recall_k, then one associate
        assert recall.units[1].id in links[recall.units[0].id]


def test_context_block_respects_the_budget(settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    units = tuple(MemoryUnit(f"u{i}", "turn", " ".join([f"w{i}"] * 10), "s1", (), 0.0, "ana") for i in range(3))
    recall = Recall(units, ("turn",), {})
    with open_memory(settings, fake_embedder, tmp_path) as memory:
        full = memory.context_block(recall, 1000)
        assert full.splitlines()[0] == "Conversation so far:" and full.splitlines()[1] == "- " + units[0].text
        for budget in range(0, 40):
            block = memory.context_block(recall, budget)
            assert len(block.split()) <= budget
            assert block == "" or block.splitlines()[1].startswith("- w0")
        assert memory.context_block(recall, 20).endswith("…")
        assert memory.context_block(recall, 4) == ""  # no room for a line with a word
        assert memory.context_block(Recall(), 300) == ""
        assert len(memory.context_block(recall).split()) == len(full.split())  # default budget 300


def test_llm_summaries_and_filter_use_a_lazy_generator(settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    settings.memory.summaries, settings.memory.llm_filter = "llm", True
    made: list[FakeGenerator] = []

    def generator() -> FakeGenerator:
        made.append(FakeGenerator(["The user has a cat called Miso.", "1"]))
        return made[-1]

    with open_memory(settings, fake_embedder, tmp_path, generator=generator) as memory:
        assert made == []  # nothing loads until a step needs it
        [_, _, summary] = memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Nice name."))
        assert summary.text == "The user has a cat called Miso."
        trace = Trace()
        recall = memory.recall("ana", "s1", "what is my cat called?", trace)
        assert len(made) == 1 and len(recall.units) == 1
        assert trace.stages[-1].details["filter"]["reply"] == ["1"]
        assert memory.llm_stats == {"summary": 1, "filter": 1}


def test_llm_facts_hold_the_model_keywords_or_the_rules(settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    settings.memory.facts = "llm"
    generator = FakeGenerator(["Miso; cat; pet name", "I cannot help with that request because it is unclear to me"])
    with open_memory(settings, fake_embedder, tmp_path, generator=generator) as memory:
        [_, fact, _] = memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Nice name."))
        assert fact.text.startswith("Keywords: Miso; cat; pet name — from:")
        [_, fact, _] = memory.remember("ana", "s1", Exchange("I moved to Lisbon in 2021.", "Exciting!"))
        assert fact.text.startswith("Keywords: moved; Lisbon; 2021")  # the unusable reply: the rules' keywords
        assert memory.llm_stats == {"facts": 1, "facts_fallback": 1}


def test_disabled_memory_remembers_nothing(settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    settings.memory.enabled = False
    with open_memory(settings, fake_embedder, tmp_path) as memory:
        assert memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Nice.")) == []
        assert memory.recall("ana", "s1", "cat?") == Recall() and memory.units("ana") == []


def test_invalid_use_is_an_error(settings: Settings, fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    settings.memory.summaries = "llm"
    with pytest.raises(ValueError, match="need a generator"):
        open_memory(settings, fake_embedder, tmp_path)
    settings.memory.summaries = "extractive"
    with open_memory(settings, fake_embedder, tmp_path) as memory:
        for user, session in [("", "s1"), ("ana", " "), ("a\x1fb", "s1"), ("ana", "s\x1f1")]:
            with pytest.raises(ValueError, match="non-empty"):
                memory.remember(user, session, Exchange("q", "a"))


def test_units_far_from_the_question_stay_out_of_the_prompt_block(memory: Memory) -> None:
    memory.remember("ana", "s1", Exchange("My cat is called Miso.", "Miso is a lovely name."))
    recall = memory.recall("ana", "s1", "what is my cat called?")
    assert len(recall.scores) == len(recall.units) and all(-1.0 <= s <= 1.0 for s in recall.scores)
    memory.settings.memory.min_similarity = -1.0
    assert "Miso" in memory.context_block(recall)
    memory.settings.memory.min_similarity = max(recall.scores) + 0.01
    assert memory.context_block(recall) == ""  # recalled (and in the trace), but not shown to the model


def test_the_memory_floor_is_the_embedders_unless_a_setting_names_one(memory: Memory) -> None:
    assert memory.settings.memory.min_similarity is None
    assert memory.min_similarity == memory.embedder.memory_floor == 0.5
    memory.settings.memory.min_similarity = 0.7
    assert memory.min_similarity == 0.7
