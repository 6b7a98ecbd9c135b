"""Query steps with a fake generator: HyDE, LLM expansion, CSQE, conversational rewriting, fallbacks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.config import QuerySettings, RetrievalSettings, Settings
from assistant.models.base import Message, ModelError
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.types import Exchange, Trace
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.csqe import split_sentences
from retrievers.expansion import COT, FEW_SHOT, ZERO_SHOT
from retrievers.hybrid import HybridRetriever
from retrievers.rewrite import ConversationalRewriter, stands_alone
from retrievers.sparse import Bm25Encoder, weighted_sum
from retrievers.store import Store, open_store

DOCS = {
    "curie.md": "# Marie Curie\nMarie Curie was a physicist and chemist. She won two Nobel Prizes. "
    "She died in 1934 in Passy, France.",
    "tower.md": "# Eiffel Tower\nThe Eiffel Tower is in Paris. It was completed in 1889 for the World's Fair.",
    "baikal.md": "# Baikal\nLake Baikal is in Siberia. It is the deepest lake in the world.",
}


class FailingGenerator(FakeGenerator):
    """A generator whose every call raises, like an endpoint that is down."""

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        self.calls.append(list(messages))
        raise ModelError("connection refused")


@pytest.fixture
def store(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder) -> Iterator[Store]:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    with open_store(settings) as s, DocStore(settings.docstore_path) as docstore:
        Ingestor(settings, fake_embedder, s, docstore, None).ingest_paths([corpus], progress=False)
        yield s


def retriever(store: Store, embedder: FakeEmbedder, generator: FakeGenerator, **query: object) -> HybridRetriever:
    return HybridRetriever(
        store, embedder, RetrievalSettings(top_k=3), query=QuerySettings(**query), generator=lambda: generator
    )


def stage(trace: Trace, name: str) -> dict:
    return next(s.details for s in trace.stages if s.name == name)


def test_no_llm_step_runs_by_default(store, fake_embedder, fake_generator) -> None:
    trace = Trace()
    retriever(store, fake_embedder, fake_generator).retrieve("Where is Lake Baikal?", trace)
    assert fake_generator.calls == []
    assert [s.name for s in trace.stages] == ["embed_query", "metadata", "search", "legs"]  # metadata: rules, no model


def test_hyde_averages_the_query_and_passage_embeddings(store, fake_embedder, fake_generator) -> None:
    passage = "Lake Baikal lies in southern Siberia, Russia."
    fake_generator.enqueue(passage)
    r = retriever(store, fake_embedder, fake_generator, hyde=True)
    trace = Trace()
    plan = r.plan("Where is Lake Baikal?", trace)
    q, p = fake_embedder.embed(["Where is Lake Baikal?", passage])
    expected = (q + p) / np.linalg.norm(q + p)
    hyde_leg = next(leg for leg in plan.legs if leg.name == "q0.hyde")
    np.testing.assert_allclose(hyde_leg.vector, expected, atol=1e-6)
    np.testing.assert_allclose(plan.reference, q, atol=1e-6)  # relevance is judged on the question itself
    assert stage(trace, "hyde")["passages"] == [passage]
    assert "Question: Where is Lake Baikal?" in fake_generator.calls[0][-1].content


def test_hyde_with_a_malformed_reply_falls_back_to_the_query_vector(store, fake_embedder, fake_generator) -> None:
    fake_generator.enqueue("  ")
    trace = Trace()
    hits = retriever(store, fake_embedder, fake_generator, hyde=True).retrieve("Where is Lake Baikal?", trace)
    assert hits  # the turn goes on
    info = stage(trace, "hyde")
    assert info["fallback"].startswith("malformed reply") and info["passages"] == []
    assert r_plan_legs(trace) == ["q0.dense", "q0.bm25"]  # the plain query vector, named as such


def r_plan_legs(trace: Trace) -> list[str]:
    return list(stage(trace, "legs")["legs"])


@pytest.mark.parametrize(("style", "template"), [("zero-shot", ZERO_SHOT), ("few-shot", FEW_SHOT), ("cot", COT)])
def test_expansion_joins_the_bm25_leg_with_the_query_repeated(store, fake_embedder, fake_generator, style, template) -> None:
    expansion = "Curie died of aplastic anaemia in Passy."
    fake_generator.enqueue(expansion)
    trace = Trace()
    plan = retriever(store, fake_embedder, fake_generator, expansion=style, query_repeats=5).plan("When did Curie die?", trace)
    assert fake_generator.calls[0][-1].content == template.format(query="When did Curie die?")
    bm25 = Bm25Encoder()
    expected = weighted_sum([(bm25.encode_query("When did Curie die?"), 5.0), (bm25.encode_query(expansion), 1.0)])
    leg = next(leg for leg in plan.legs if leg.using == "sparse")
    assert leg.name == "q0.bm25+expansion"
    assert dict(zip(leg.vector.indices, leg.vector.values)) == dict(zip(expected.indices, expected.values))
    curie = bm25.encode_query("Curie").indices[0]
    assert dict(zip(leg.vector.indices, leg.vector.values))[curie] == 6.0  # 5 x query + once in the expansion
    assert stage(trace, "expand")["expansion"] == expansion
    assert next(leg for leg in plan.legs if leg.using == "dense").name == "q0.dense"  # expansion is BM25 only


def test_expansion_failure_keeps_the_plain_query(store, fake_embedder) -> None:
    failing = FailingGenerator()
    trace = Trace()
    r = retriever(store, fake_embedder, failing, expansion="zero-shot")
    hits = r.retrieve("When did Curie die?", trace)
    assert hits and "curie" in hits[0].source
    assert stage(trace, "expand")["fallback"] == "generator failed: ModelError: connection refused"
    assert "q0.bm25" in r_plan_legs(trace)  # the plain leg, not an expanded one


def test_csqe_adds_the_sentences_the_llm_marks(store, fake_embedder, fake_generator) -> None:
    fake_generator.enqueue("Curie's death was in the 1930s.", "3")
    trace = Trace()
    plan = retriever(store, fake_embedder, fake_generator, csqe=True, csqe_hits=1).plan("When did Curie die?", trace)
    csqe_prompt = fake_generator.calls[1][-1].content
    assert "2. She won two Nobel Prizes.\n3. She died in 1934 in Passy, France." in csqe_prompt
    assert "Question: When did Curie die?" in csqe_prompt
    info = stage(trace, "csqe")
    assert info["selected"] == ["She died in 1934 in Passy, France."]
    assert len(info["first_pass_ids"]) == 1
    bm25 = Bm25Encoder()
    leg = next(leg for leg in plan.legs if leg.using == "sparse")
    passy = bm25.encode_query("Passy").indices[0]
    assert dict(zip(leg.vector.indices, leg.vector.values))[passy] == 1.0  # from the corpus sentence only


def test_csqe_out_of_range_numbers_are_a_fallback(store, fake_embedder, fake_generator) -> None:
    fake_generator.enqueue("Curie died in 1934 in France.", "sentence 99 and maybe 0")
    trace = Trace()
    retriever(store, fake_embedder, fake_generator, csqe=True, csqe_hits=1).retrieve("When did Curie die?", trace)
    info = stage(trace, "csqe")
    assert info["fallback"].startswith("malformed reply") and info["selected"] == []
    assert stage(trace, "expand")["expansion"] == "Curie died in 1934 in France."  # the LLM expansion still counts


def test_a_follow_up_is_rewritten_and_every_rewrite_is_fused(store, fake_embedder, fake_generator) -> None:
    history = [
        Exchange("Who was Marie Curie?", "A physicist and chemist who won two Nobel Prizes [1]."),
        Exchange("What did she discover?", "Polonium and radium [1]."),
    ]
    fake_generator.enqueue("1. When did Marie Curie die?\n2. Year of Marie Curie's death")
    trace = Trace()
    r = retriever(store, fake_embedder, fake_generator)
    hits = r.retrieve("and when did she die?", trace, history=history)
    prompt = fake_generator.calls[0][-1].content
    assert "Q: Who was Marie Curie?" in prompt and "Last question: and when did she die?" in prompt
    # The rewrite that is no question is discarded; the user's own follow-up is always searched too.
    assert stage(trace, "embed_query")["variants"] == ["When did Marie Curie die?", "and when did she die?"]
    assert stage(trace, "rewrite")["discarded"] == [{"rewrite": "Year of Marie Curie's death", "why": "not a question"}]
    assert r_plan_legs(trace) == ["q0.dense", "q0.bm25", "q1.dense", "q1.bm25"]
    assert stage(trace, "search")["legs"] == 4
    assert "curie" in hits[0].source


def test_rewriting_a_malformed_reply_keeps_the_follow_up(fake_generator) -> None:
    fake_generator.enqueue("?")
    info: dict = {}
    rewriter = ConversationalRewriter(fake_generator, rewrites=2)
    variants = rewriter.rewrite("and when did she die?", [Exchange("Who was Curie?", "A physicist.")], info)
    assert variants == ["and when did she die?"]
    assert info["fallback"].startswith("malformed reply")
    assert rewriter.rewrite("Who was Curie?", [], {}) == ["Who was Curie?"]  # a first question is left alone


def test_a_question_that_stands_alone_is_not_rewritten(fake_generator) -> None:
    info: dict = {}
    history = [Exchange("When is the Kelvaro festival?", "In May [1].")]
    rewriter = ConversationalRewriter(fake_generator, rewrites=2)
    assert rewriter.rewrite("Who launched the Sable Wren?", history, info) == ["Who launched the Sable Wren?"]
    assert info["skipped"] == "the question stands alone" and not fake_generator.calls


def test_rewrites_that_drop_the_questions_names_or_answer_it_are_discarded(fake_generator) -> None:
    fake_generator.enqueue(
        "Q: When did the Kelvaro festival open its Sable Wren exhibit?\n"
        "A: The exhibit opened in May.\n"
        "When did the Kelvaro festival open?\n"
    )
    info: dict = {}
    history = [Exchange("When is the Kelvaro festival?", "In May [1].")]
    variants = ConversationalRewriter(fake_generator, rewrites=3).rewrite("When did it open the Sable Wren exhibit?", history, info)
    assert variants == ["When did the Kelvaro festival open its Sable Wren exhibit?", "When did it open the Sable Wren exhibit?"]
    assert [d["why"] for d in info["discarded"]] == ["not a question", "drops Sable, Wren"]


@pytest.mark.parametrize(
    "question,alone",
    [
        ("Who launched the Sable Wren?", True),
        ("What is the capital of the country that borders Chile?", True),
        ("and when did she die?", False),
        ("What did they find there?", False),
        ("Why?", False),
        ("What about the second one?", False),
    ],
)
def test_stands_alone(question: str, alone: bool) -> None:
    assert stands_alone(question) is alone


def test_an_identical_question_reuses_its_llm_steps(store, fake_embedder, fake_generator) -> None:
    fake_generator.enqueue("Lake Baikal lies in Siberia, Russia.")
    r = retriever(store, fake_embedder, fake_generator, hyde=True)
    first = r.retrieve("Where is Lake Baikal?", Trace())
    trace = Trace()
    again = r.retrieve("Where is Lake Baikal?", trace, top_k=2)
    assert len(fake_generator.calls) == 1
    assert [h.unit_id for h in again] == [h.unit_id for h in first][:2]
    assert stage(trace, "hyde")["reused"] is True


def test_sentence_split() -> None:
    assert split_sentences("It is short. Lake Baikal is the deepest lake. It holds 20% of fresh water!") == [
        "Lake Baikal is the deepest lake.",
        "It holds 20% of fresh water!",
    ]


@pytest.mark.parametrize(
    ("reply", "chosen"),
    [
        ("2, 3", [2, 3]),
        ("3.", [3]),
        ("1. Lake Baikal is in Siberia, Russia today\n3. more", [1, 3]),
        ("It holds 20% of the world's fresh surface water, they say.", [3]),  # a copied sentence
    ],
)
def test_csqe_understands_numbers_lines_and_copied_sentences(fake_generator, reply, chosen) -> None:
    from retrievers.csqe import CorpusSteeredExpander

    passage = (
        "Lake Baikal is in Siberia, Russia today. It is the deepest lake in the world by far. "
        "It holds 20% of the world's fresh surface water, they say."
    )
    fake_generator.enqueue(reply)
    info: dict = {}
    picked = CorpusSteeredExpander(fake_generator).select("How much water does Baikal hold?", [passage], info)
    assert picked == [split_sentences(passage)[n - 1] for n in chosen]
