"""End to end with the real bundled models and embedded Qdrant Edge (slower: marked integration).

The model cache is shared by the whole session, so the GGUF is dequantised once per test run.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.base import Message
from assistant.models.embedders import minilm
from assistant.models.local import TransformersGenerator
from assistant.models.registry import create_generator
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from retrievers.store import open_store

pytestmark = pytest.mark.integration
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tessera-home")


@pytest.fixture(scope="module")
def assistant(home: Path):
    settings = Settings(home=home)
    bot = Assistant(settings)
    with DocStore(settings.docstore_path) as docstore:
        report = Ingestor(settings, bot.embedder, bot.store, docstore).ingest_paths([GUIDE], progress=False)
    assert len(report.ingested) == len(list(GUIDE.glob("*.md"))) and not report.failed
    yield bot
    bot.close()


def test_bundled_embedder_ranks_paraphrases_together() -> None:
    embedder = minilm()
    vectors = embedder.embed(["How deep is the lake?", "The lake is 1,642 metres deep.", "Stock prices fell today."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embedder.count_tokens("Lake Baikal") >= 2


def test_bundled_embedder_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    embedder = minilm()
    texts = ["Lake Baikal is deep.", "A much longer sentence about hybrid retrieval and reciprocal rank fusion."]
    reference = SentenceTransformer(str(embedder.path), device="cpu").encode(texts, normalize_embeddings=True)
    assert np.allclose(embedder.embed(texts), reference, atol=1e-5)


def test_question_about_the_guide_is_answered_and_cited_only_where_supported(assistant: Assistant) -> None:
    from assistant.render import support_notes
    from assistant.support import SupportChecker

    question = "How does hybrid retrieval merge the two ranked lists?"
    answer = assistant.ask(question)
    assert any(h.source.endswith("asking.md") for h in answer.contexts)
    assert not answer.abstained
    # Gemma 270M's answer here is not always what the guide says: a citation is shown only where the support
    # check passes, otherwise the answer reads as unverified (docs/EVALUATION.md, "Support check").
    if answer.citations:
        assert all(c.hit.source.startswith(str(GUIDE)) for c in answer.citations)
        unsupported = [v.sentence for v in SupportChecker().check(answer.text, list(answer.contexts), question) if not v.supported]
        assert len(unsupported) == len(answer.unsupported), (answer.text, answer.unsupported)  # each one flagged
    else:
        assert support_notes(answer)[0].startswith("⚠ Unverified"), answer.text
    assert {s.name for s in answer.trace.stages} >= {"search", "order", "generate", "cite"}
    order = next(s.details for s in answer.trace.stages if s.name == "order")
    # The default order puts the best-scored source last, nearest the question.
    assert order["ran"] == "score-last" and answer.contexts[-1].score == max(h.score for h in answer.contexts)


def test_attention_sorting_runs_on_the_real_model(assistant: Assistant) -> None:
    from assistant.ordering import ContextOrderer
    from assistant.prompts import build_messages, source_blocks
    from assistant.types import Trace

    question = "How does hybrid retrieval merge the two ranked lists?"
    hits = assistant.search(question, Trace())
    trace = Trace()
    ordered = ContextOrderer("attention").arrange(
        hits, assistant.generator, lambda shown: (build_messages(question, shown), source_blocks(shown)), trace
    )
    order = trace.stages[0].details
    # One score per source from the bundled model's attention, the most attended placed last.
    assert order["ran"] == "attention" and len(order["rounds"][0]) == len(hits) >= 2
    scores = order["rounds"][-1]
    assert ordered[-1].unit_id == max(scores, key=scores.get)
    assert all(0 < v < 1 for v in scores.values())


def test_query_steps_run_on_the_real_generator(assistant: Assistant) -> None:
    from assistant.types import Trace

    settings = assistant.settings
    query = settings.query.model_copy(update={"hyde": True, "expansion": "few-shot", "csqe": True})
    bot = Assistant(
        settings.model_copy(update={"query": query}),
        embedder=assistant.embedder,
        generator=assistant.generator,
        store=assistant.store,
    )
    trace = Trace()
    hits = bot.search("Which file types can Tessera read?", trace)
    steps = {s.name: s.details for s in trace.stages}
    assert {"hyde", "expand", "csqe", "legs"} <= set(steps)
    assert any(h.source.endswith("ingesting.md") for h in hits)
    assert set(steps["legs"]["legs"]) == {"q0.hyde", "q0.bm25+expansion"} or "fallback" in steps["hyde"]


def test_unrelated_question_is_declined(assistant: Assistant) -> None:
    answer = assistant.ask("What is the population of Lima?")
    assert answer.abstained and answer.text == "The documents don't say."


def test_hybrid_retrieval_finds_an_exact_setting_name(assistant: Assistant) -> None:
    hits = assistant.search("max_file_mb")
    assert "max_file_mb" in hits[0].text


def test_generator_streams_the_same_text_and_reloads_from_cache(home: Path) -> None:
    settings = Settings(home=home, models={"runtime": "transformers"})
    messages = [Message("system", "Be brief."), Message("user", "Name a colour.")]
    first = create_generator(settings, "smollm2-135m")
    whole = first.generate(messages, max_new_tokens=12)
    assert whole.strip()
    assert "".join(first.stream(messages, max_new_tokens=12)) == whole
    cached = next((settings.model_cache).glob("*/model.safetensors"))
    second = create_generator(settings, "smollm2-135m")
    assert isinstance(second, TransformersGenerator)
    assert second.generate(messages, max_new_tokens=12) == whole
    assert cached.exists()


def test_embedder_tokenizer_is_safe_across_threads() -> None:
    """Ingestion counts tokens in its parse-ahead thread while the main thread embeds: the fast tokenizer's
    padding state used to race ("Unable to create tensor")."""
    import threading

    embedder = minilm()
    embedder.embed(["warm up"])
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            embedder.count_tokens("a short text to count " * 5)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        for i in range(100):
            vectors = embedder.embed(["x " * (i % 7 + 1), "a much longer text " * 20, "a middling text"])
            assert vectors.shape == (3, 384)
    finally:
        done.set()
        counter.join()


FESTIVAL = """<html><head><title>Kelvaro Lantern Festival</title></head><body>
<h1>Kelvaro Lantern Festival</h1>
<h2>Lanterns</h2>
<p>The Grey Heron lantern is the largest of the festival: it is 4.5 metres long and carried by twelve people.
Lanterns are lit at dusk on the harbour wall.</p>
<h2>Boats</h2>
<p>Fishing boats sail past the harbour at nine in the evening, each with one lantern at its bow.</p>
</body></html>"""
COLOURS = {"red", "blue", "green", "yellow", "white", "grey", "gray", "black", "orange", "purple", "gold", "golden", "silver"}


def test_real_model_answers_are_never_shown_supported_beyond_the_files(tmp_path: Path) -> None:
    """The festival case of the trustworthy-answers issue, on the default model: whatever it writes, a colour
    or a price the files never give is not shown as a supported, cited answer, and no heading is a passage."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "festival.html").write_text(FESTIVAL)
    settings = Settings(home=tmp_path / "home")
    bot = Assistant(settings)
    try:
        with DocStore(settings.docstore_path) as docstore:
            Ingestor(settings, bot.embedder, bot.store, docstore).ingest_paths([corpus], progress=False)
        hits = bot.search("Kelvaro Lantern Festival")
        assert hits and all(len(h.text.split()) > len("Kelvaro Lantern Festival".split()) for h in hits)
        colour = bot.ask("What colour is the Grey Heron lantern?")
        named = COLOURS & set(re.findall(r"[a-z]+", colour.text.lower())) - {"grey"}  # "Grey" is its name
        if named and not colour.abstained:
            assert colour.unsupported or not colour.citations, colour.text
        price = bot.ask("How much did a ticket to the Kelvaro Lantern Festival cost?")
        if re.search(r"\d", price.text) and not price.abstained:
            assert price.unsupported or not price.citations, price.text
    finally:
        bot.close()
