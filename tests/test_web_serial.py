"""The web app's model and index work takes turns: an upload never runs while an answer is generated."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.base import Generator, Message
from assistant.models.fake import FakeEmbedder
from retrievers.store import open_store
from assistant.backend import ChatBackend
from ui.web import serve
from ui.web.screenshot import free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


class SlowGenerator(Generator):
    """Streams a cited answer over about a second, and says while it is generating."""

    name = "slow"

    def __init__(self) -> None:
        self.generating = threading.Event()

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        self.generating.set()
        try:
            for word in "Lake Baikal is the deepest lake in the world [1].".split():
                time.sleep(0.12)
                yield word + " "
        finally:
            self.generating.clear()


def test_an_upload_waits_for_the_answer_being_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio_client import Client, handle_file

    for key in list(os.environ):
        if key.startswith("TESSERA_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world.\n")
    upload = tmp_path / "rivers.md"
    upload.write_text("# Rivers\nThe Nile is a long river.\n")
    settings = Settings(home=tmp_path / "home")
    settings = settings.model_copy(update={"context": settings.context.model_copy(update={"order": "retrieval"})})
    generator = SlowGenerator()
    backend = ChatBackend(settings, assistant=Assistant(settings, embedder=FakeEmbedder(64), generator=generator, store=open_store(settings)))
    backend.ingest([corpus], progress=False)
    overlapped: list[bool] = []
    ingest = backend.ingest

    def watched_ingest(paths, **kwargs):
        overlapped.append(generator.generating.is_set())
        return ingest(paths, **kwargs)

    backend.ingest = watched_ingest  # type: ignore[method-assign]
    port = free_port()
    app = serve(backend, port=port, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        asker, uploader = Client(url, verbose=False), Client(url, verbose=False)
        d = settings
        answer = asker.submit(
            "How deep is Lake Baikal?", [], True, d.query.hyde, d.query.expansion, False, d.retrieval.top_k, d.models.generator,
            api_name="/ask",
        )
        assert generator.generating.wait(10), "the answer never started"
        uploaded = uploader.submit([handle_file(str(upload))], api_name="/upload_files")
        history = answer.result(timeout=60)[0]
        uploaded.result(timeout=60)
        assert "deepest lake" in str(history[-1]["content"])
        assert overlapped == [False]  # the upload ran, and only once the answer was done
        assert any(r.source.endswith("rivers.md") for r in backend.documents())
    finally:
        app.close()
        backend.close()
