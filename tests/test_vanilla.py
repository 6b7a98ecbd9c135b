"""Tests for eval/vanilla.py: the llama-index baseline, driven by fake models only."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest
from llama_index.core import Settings as LlamaSettings
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.prompts.default_prompts import DEFAULT_TEXT_QA_PROMPT_TMPL

from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.types import Document
from eval.vanilla import LlamaIndexEmbedding, LlamaIndexLLM, VanillaPipeline

DOCS = [
    Document("paris", "/docs/france.md", "France", "The capital of France is Paris, on the Seine."),
    Document("banana", "/docs/fruit.md", "Fruit", "Bananas are yellow and grow in tropical climates."),
    Document("rust", "/docs/code.md", "Code", "Rust is a systems programming language with a borrow checker."),
]
QUESTION = "What is the capital of France?"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OpenAI key and no sockets: any reach for a remote model fails loudly."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the vanilla baseline tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def pipeline(settings: Settings, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator) -> VanillaPipeline:
    vanilla = VanillaPipeline(settings, fake_embedder, fake_generator)
    vanilla.index(DOCS)
    return vanilla


def test_default_init_uses_llama_index_defaults_and_our_generation_settings(
    settings: Settings, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    vanilla = VanillaPipeline(settings, fake_embedder, fake_generator)
    meta = vanilla.llm.metadata
    assert (meta.context_window, meta.num_output, meta.is_chat_model) == (8192, settings.models.max_new_tokens, False)
    assert vanilla.llm.temperature == settings.models.temperature
    vanilla.index(DOCS)
    assert vanilla.engine.retriever.similarity_top_k == DEFAULT_SIMILARITY_TOP_K == 2


def test_ask_before_index_says_what_to_do(
    settings: Settings, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    with pytest.raises(RuntimeError, match=r"call index\(documents\)"):
        VanillaPipeline(settings, fake_embedder, fake_generator).ask(QUESTION)


def test_ask_retrieves_the_matching_chunk_and_sends_the_default_qa_prompt(
    pipeline: VanillaPipeline, fake_generator: FakeGenerator
) -> None:
    fake_generator.enqueue("Paris.")
    answer = pipeline.ask(QUESTION)

    assert answer.text == "Paris."
    assert not answer.abstained and answer.citations == ()
    assert len(answer.contexts) == 2
    top = answer.contexts[0]
    assert (top.doc_id, top.source, top.title) == ("paris", "/docs/france.md", "France")
    assert top.text == DOCS[0].text and top.unit_id == top.passage_id
    assert top.score == top.dense_score and top.score > answer.contexts[1].score

    [messages] = fake_generator.calls
    assert [m.role for m in messages] == ["user"]
    prompt = messages[0].content
    head, tail = DEFAULT_TEXT_QA_PROMPT_TMPL.split("{context_str}")
    assert prompt.startswith(head)
    assert prompt.endswith(tail.replace("{query_str}", QUESTION))
    assert DOCS[0].text in prompt and "title: France" in prompt  # llama-index's default metadata mode

    assert [s.name for s in answer.trace.stages] == ["retrieve", "generate"]
    assert answer.trace.stages[0].details == {"top_k": 2, "hits": 2}


def test_ask_equals_the_query_engine(pipeline: VanillaPipeline, fake_generator: FakeGenerator) -> None:
    fake_generator.enqueue("Paris.", "Paris.")
    answer = pipeline.ask(QUESTION)
    response = pipeline.engine.query(QUESTION)
    assert response.response == answer.text
    assert [n.node.node_id for n in response.source_nodes] == [h.unit_id for h in answer.contexts]
    assert fake_generator.calls[0] == fake_generator.calls[1]


def test_search_is_retrieval_only(pipeline: VanillaPipeline, fake_generator: FakeGenerator) -> None:
    hits = pipeline.search("borrow checker programming language")
    assert hits[0].doc_id == "rust" and len(hits) == 2
    assert fake_generator.calls == []


def test_an_i_dont_know_reply_is_an_abstention(pipeline: VanillaPipeline, fake_generator: FakeGenerator) -> None:
    fake_generator.enqueue("I don't know.")
    assert pipeline.ask(QUESTION).abstained


def test_an_empty_index_abstains_without_calling_the_generator(
    settings: Settings, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    vanilla = VanillaPipeline(settings, fake_embedder, fake_generator)
    vanilla.index([])
    answer = vanilla.ask(QUESTION)
    assert answer.abstained and answer.contexts == () and fake_generator.calls == []


def test_long_documents_are_split_into_default_size_chunks(
    settings: Settings, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))
    vanilla = VanillaPipeline(settings, fake_embedder, fake_generator)
    vanilla.index([Document("long", "/docs/long.md", "Long", text)])
    hits = vanilla.search("topic 3")
    assert len(hits) == 2 and all(h.doc_id == "long" and len(h.text) < len(text) for h in hits)


def test_llama_index_global_settings_are_left_alone(
    settings: Settings, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    names = ("_llm", "_embed_model", "_node_parser", "_transformations", "_prompt_helper")
    before = [getattr(LlamaSettings, n) for n in names]
    vanilla = VanillaPipeline(settings, fake_embedder, fake_generator)
    vanilla.index(DOCS)
    vanilla.ask(QUESTION)
    assert [getattr(LlamaSettings, n) for n in names] == before


def test_stream_complete_joins_to_complete(fake_generator: FakeGenerator) -> None:
    llm = LlamaIndexLLM(fake_generator, max_new_tokens=32)
    fake_generator.enqueue("Paris is on the Seine.", "Paris is on the Seine.")
    whole = llm.complete("Where is Paris?").text
    pieces = list(llm.stream_complete("Where is Paris?"))
    assert "".join(p.delta for p in pieces) == whole == pieces[-1].text == "Paris is on the Seine."
    assert fake_generator.calls[0] == fake_generator.calls[1]
    assert fake_generator.calls[0][0].content == "Where is Paris?"


def test_chat_goes_through_complete(fake_generator: FakeGenerator) -> None:
    from llama_index.core.llms import ChatMessage

    fake_generator.enqueue("Hello!")
    reply = LlamaIndexLLM(fake_generator).chat([ChatMessage(role="user", content="Hi")])
    assert reply.message.content == "Hello!"


def test_embedding_adapter_returns_the_wrapped_vectors(fake_embedder: FakeEmbedder) -> None:
    adapter = LlamaIndexEmbedding(fake_embedder)
    texts = ["the capital of France", "yellow bananas", "borrow checker"]
    expected = fake_embedder.embed(texts)
    assert np.allclose(adapter.get_query_embedding(texts[0]), expected[0])
    assert np.allclose(adapter.get_text_embedding(texts[1]), expected[1])
    assert np.allclose(adapter.get_text_embedding_batch(texts), expected)
    assert np.allclose(asyncio.run(adapter.aget_query_embedding(texts[2])), expected[2])
    assert np.allclose(asyncio.run(adapter.aget_text_embedding_batch(texts)), expected)
    assert adapter.model_name == fake_embedder.name
