"""Memory is evidence too (issue "Trustworthy answers", case 6), over fake models and a real embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.render import answer_text
from retrievers.store import open_store
from assistant.backend import ChatBackend
from ui.web.render import trace_html


@pytest.fixture
def backend(settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator):
    """A chat backend over fakes with one document about Lake Baikal indexed."""
    # The fake embedder is a 64-bucket word hash: a stricter gate keeps its collisions from passing as relevance.
    settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"min_relevance": 0.5})})
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    assistant = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=open_store(settings))
    backend = ChatBackend(settings, assistant=assistant)
    try:
        backend.ingest([corpus], progress=False)
        yield backend
    finally:
        backend.close()


def test_a_fact_from_an_earlier_session_is_answered_and_cited_as_the_conversation(
    backend: ChatBackend, fake_generator: FakeGenerator
) -> None:
    fake_generator.enqueue("Your project codename is Bluefinch.")
    # Nothing relevant is recalled or indexed yet: abstained, but the user's words are remembered.
    assert backend.chat("ann", "s1").ask("Remember this: my project codename is Bluefinch.").abstained
    answer = backend.chat("ann", "s2").ask("What is my project codename?")
    stages = {s.name: s.details for s in answer.trace.stages}
    # The documents know nothing about codenames; the recalled turn lets the model answer.
    assert stages["relevance_gate"]["documents_relevant"] is False and stages["relevance_gate"]["passed"] is True
    assert not answer.abstained and answer.text == "Your project codename is Bluefinch."
    assert answer.unsupported == () and answer.citations == ()
    assert stages["cite"]["from_memory"][0]["session"] == "s1"
    printed = answer_text(answer)
    assert "From the conversation (session s1): User: Remember this: my project codename is Bluefinch." in printed
    assert "Unverified" not in printed
    # The trace shows the recalled text, not only its id.
    assert any("Bluefinch" in m["text"] for m in stages["memory"]["recalled"])
    assert "Recalled from the conversation" in trace_html("What is my project codename?", answer)
    # Another user recalls nothing: the gate looks at the documents alone and abstains.
    other = backend.chat("bob", "s1").ask("What is my project codename?")
    assert other.abstained


def test_the_assistants_own_earlier_reply_is_not_evidence_for_itself(
    backend: ChatBackend, fake_generator: FakeGenerator
) -> None:
    # The user never says the codename; the model invents one anyway, and it is shown unverified.
    fake_generator.enqueue("Your project codename is Redwing.", "Your project codename is Redwing.")
    first = backend.chat("ann", "s1").ask("How deep is Lake Baikal, and what is my project codename?")
    assert not first.abstained and "Redwing" in "".join(first.unsupported) + answer_text(first)
    assert "From the conversation" not in answer_text(first)
    again = backend.chat("ann", "s2").ask("What is my project codename?")
    stages = {s.name: s.details for s in again.trace.stages}
    assert any("Redwing" in m["text"] for m in stages["memory"]["recalled"])  # recalled, with the reply in it
    assert not stages["cite"].get("from_memory")  # but the reply does not vouch for itself
    assert "From the conversation" not in answer_text(again)


def test_a_memory_failure_never_costs_the_answer_and_is_retried(
    settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    assistant = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=open_store(settings))
    backend = ChatBackend(settings, assistant=assistant)
    try:
        chat = backend.chat("ann", "s1")
        real_remember = backend.memory.remember
        calls: list[str] = []

        def failing(user, session, exchange):  # the disk is full, the clustering fails, ...
            calls.append(exchange.question)
            raise OSError("No space left on device")

        backend.memory.remember = failing
        answer = chat.ask("What did I say about lakes?")
        assert answer.text  # the answer reaches the user
        assert chat.memory_error == "OSError: No space left on device"
        stage = {s.name: s.details for s in answer.trace.stages}["remember"]
        assert stage["error"] == "OSError: No space left on device" and stage["unsaved"] == 1
        backend.memory.remember = real_remember
        chat.ask("And about rivers?")
        assert chat.memory_error is None
        saved = [e.question for e in backend.memory.history("ann", "s1")]
        assert saved == ["What did I say about lakes?", "And about rivers?"]  # the failed one was retried first
        assert calls == ["What did I say about lakes?"]
    finally:
        backend.close()
