"""Memory is evidence too (issue "Trustworthy answers", case 6), over fake models and a real embedded store."""

from __future__ import annotations

from pathlib import Path

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator
from assistant.render import answer_text
from retrievers.store import open_store
from ui.backend import ChatBackend
from ui.web.render import trace_html


def test_a_fact_from_an_earlier_session_is_answered_and_cited_as_the_conversation(
    settings: Settings, tmp_path: Path, fake_embedder: FakeEmbedder, fake_generator: FakeGenerator
) -> None:
    # The fake embedder is a 64-bucket word hash: a stricter gate keeps its collisions from passing as relevance.
    settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"min_relevance": 0.5})})
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    assistant = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=open_store(settings))
    backend = ChatBackend(settings, assistant=assistant)
    try:
        backend.ingest([corpus], progress=False)
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
    finally:
        backend.close()
