"""The web app's HTML panels (`ui.web.render`) and per-tab settings (`ui.web.app.Overrides`), without a browser."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from assistant.config import Settings
from assistant.types import Answer, Citation, Hit, StageRecord, Trace
from ui.web.app import TabAssistants, Overrides, friendly
from ui.web.render import (
    cited_text,
    content_words,
    document_choices,
    document_rows,
    highlight_passage,
    ingest_html,
    source_choices,
    sources_html,
    status_html,
    trace_html,
)

LAKES = Hit("d1:0", "# Lakes\nLake Baikal is the deepest lake. It is in Siberia.", 0.03, "/docs/lakes.md", "d1:0", "d1", "Lakes", heading="Lakes")
TOWERS = Hit("d2:0", "The Eiffel Tower is <b>330</b> metres tall & in Paris.", 0.02, "/docs/towers.md", "d2:0", "d2", "Towers", page=3)


def make_answer(text: str = "Lake Baikal is the deepest lake [1]. The tower is 330 metres [2].") -> Answer:
    trace = Trace(
        [
            StageRecord("embed_query", 0.001, {"variants": ["How deep is Baikal?"]}),
            StageRecord("hyde", 0.2, {"passages": ["Baikal <deep> passage"]}),
            StageRecord("expand", 0.3, {"style": "few-shot", "expansion": "lake depth siberia"}),
            StageRecord("search", 0.004, {"mode": "hybrid", "hits": [
                {"unit_id": "d1:0", "score": 0.03, "dense_score": 0.8},
                {"unit_id": "d2:0", "score": 0.02, "dense_score": 0.4},
            ]}),
            StageRecord("legs", 0.002, {"legs": {"q0.hyde": ["d1:0", "d2:0"], "q0.bm25+expansion": ["d2:0"]}}),
            StageRecord("relevance_gate", 0.0, {"best_dense_score": 0.8, "passed": True, "min_relevance": 0.25}),
            StageRecord("order", 0.05, {"requested": "attention", "ran": "attention", "order": ["d2:0", "d1:0"],
                                        "rounds": [{"d1:0": 0.7, "d2:0": 0.1}]}),
            StageRecord("generate", 1.5, {}),
        ]
    )
    return Answer(text, (Citation(1, LAKES), Citation(2, TOWERS)), (LAKES, TOWERS), False, trace)


def test_content_words_drop_stopwords_and_markers() -> None:
    assert content_words("The lake is 1,642 metres deep [1].") == {"lake", "1", "642", "metres", "deep"}


def test_cited_text_picks_the_sentences_with_the_marker() -> None:
    text = "Baikal is deep [1]. The tower is tall [2]."
    assert cited_text(text, 2) == "The tower is tall [2]."
    assert cited_text(text, 3) == text


def test_highlight_marks_sharing_sentences_and_escapes() -> None:
    html = highlight_passage("Intro <script>x</script>. Lake Baikal is deep & old. Paris is far.", "Baikal lake [1]")
    assert "<mark>Lake Baikal is deep &amp; old.</mark>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<mark>Paris" not in html and "<mark>Intro" not in html


def test_highlight_keeps_wrapped_sentences_whole_and_headings_apart() -> None:
    passage = "## Types\n\nTessera reads Markdown and\nPDF files. Give tessera\nfolders of files.\n# Next\n- a list item"
    html = highlight_passage(passage, "Tessera reads Markdown and PDF files [1].")
    assert "<mark>Tessera reads Markdown and\nPDF files.</mark>" in html
    assert "<mark>## Types" not in html and "<mark>Give" not in html and "<mark># Next" not in html
    assert "# Lakes\n<mark>Lake Baikal is deep.</mark>" in highlight_passage("# Lakes\nLake Baikal is deep.", "Baikal lake deep")


def test_highlight_marks_every_sentence_that_matches_about_as_well_as_the_best() -> None:
    passage = "Baikal is in Siberia. Baikal is the deepest lake. Paris has a tower."
    html = highlight_passage(passage, "Baikal, in Siberia, is the deepest lake [1].")
    assert html == "<mark>Baikal is in Siberia.</mark> <mark>Baikal is the deepest lake.</mark> Paris has a tower."


def test_highlight_without_overlap_marks_nothing() -> None:
    assert "<mark>" not in highlight_passage("Nothing in common here.", "Baikal")
    assert highlight_passage("a\nb", "") == "a\nb"


def test_sources_html_lists_citations_and_shows_the_selected_passage() -> None:
    answer = make_answer()
    assert source_choices(answer) == [("[1] lakes.md § Lakes", 1), ("[2] towers.md, page 3", 2)]
    first = sources_html(answer)
    assert "<mark>Lake Baikal is the deepest lake.</mark>" in first and "Eiffel" not in first
    second = sources_html(answer, 2)
    assert "&lt;b&gt;330&lt;/b&gt;" in second and "<b>330</b>" not in second and "&amp; in Paris" in second
    assert "<mark>" in second and "towers.md, page 3" in second


def test_sources_html_without_citations() -> None:
    assert "Ask a question" in sources_html(None)
    abstained = Answer("The documents don't say.", (), (LAKES,), True, Trace())
    assert "searched 1 passages" in sources_html(abstained)
    assert "nothing is indexed" in sources_html(Answer("x", (), (), True, Trace()))
    assert source_choices(None) == []


def test_an_answer_nothing_supports_is_a_warning_never_worded_like_an_abstention() -> None:
    unverified = Answer("1,000 euros", (), (LAKES, TOWERS), False, Trace(), ("1,000 euros",))
    html = sources_html(unverified)
    assert "Unverified: no source supports this answer (2 passages searched)" in html and "none held" not in html
    assert "unverified" in status_html(4, unverified) and "0 sources" not in status_html(4, unverified)
    partly = make_answer()
    partly = Answer(partly.text, partly.citations, partly.contexts, False, partly.trace, ("The tower is 330 metres [2].",))
    assert "Not supported by the sources: The tower is 330 metres [2]." in sources_html(partly)
    assert "1 sentence unsupported" in status_html(5, partly)


def test_trace_html_shows_variants_hyde_expansion_fused_order_and_timings() -> None:
    html = trace_html("How deep is Baikal?", make_answer())
    for expected in (
        "How deep is Baikal?",
        "Baikal &lt;deep&gt; passage",  # HyDE, escaped
        "lake depth siberia",
        "Expansion (few-shot)",
        "q0.bm25+expansion",
        "Fused hits (hybrid)",
        "score 0.03",
        "Context order: attention",
        "attention round 1",
        "Relevance gate",
        "<td>generate</td><td>1500.0 ms</td>",
        "total",
    ):
        assert expected in html, expected
    assert html.index("Context order") < html.index("[2] towers.md, page 3", html.index("Context order"))
    assert "latest answer" in trace_html("", None)


def test_ingest_html_and_document_rows() -> None:
    report = SimpleNamespace(ingested=["/h/uploads/a.md"], unchanged=[], failed=[("/h/uploads/b.xyz", "unsupported <type>")], passages=3, propositions=5)
    html = ingest_html(report, [("big.pdf", "too large")])
    assert "Ingested 1" in html and "3 passages" in html and "a.md" in html
    assert "b.xyz: unsupported &lt;type&gt;" in html and "big.pdf: too large" in html
    record = SimpleNamespace(source="/h/docs/a<b>.md", passages=3, propositions=5, ingested_at=0.0)
    assert document_rows([record])[0][:3] == ['<span title="/h/docs">a&lt;b&gt;.md</span>', 3, 5]
    twin = SimpleNamespace(source="/h/other/a<b>.md", passages=1, propositions=1, ingested_at=0.0)
    solo = SimpleNamespace(source="/h/c.md", passages=1, propositions=1, ingested_at=0.0)
    # The picker shows file names; a name two folders share is shown with its path.
    assert document_choices([record, twin, solo]) == [
        ("/h/docs/a<b>.md", "/h/docs/a<b>.md"), ("/h/other/a<b>.md", "/h/other/a<b>.md"), ("c.md", "/h/c.md")
    ]


def test_overrides_change_only_what_differs(settings: Settings) -> None:
    defaults = Overrides.of(settings)
    assert defaults.with_controls(True, False, "off", False, 4, "") == defaults  # best-last: sorting off
    changed = defaults.with_controls(False, True, "few-shot", True, 7, "smollm2-135m")
    assert (changed.mode, changed.hyde, changed.expansion, changed.order, changed.top_k, changed.generator) == (
        "dense", True, "few-shot", "attention", 7, "smollm2-135m"
    )
    applied = changed.apply(settings)
    assert applied.retrieval.mode == "dense" and applied.context.order == "attention" and applied.models.generator == "smollm2-135m"
    sorted_first = Overrides.of(settings.model_copy(update={"context": settings.context.model_copy(update={"order": "attention"})}))
    assert sorted_first.with_controls(True, False, "off", False, 4, "").order == "reversed"  # unticked: best last
    assert settings.retrieval.mode == "hybrid"  # the backend's settings are untouched


def test_assistants_share_the_backend_components(settings: Settings, fake_embedder, fake_generator) -> None:
    from assistant.assistant import Assistant

    base = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=object())  # type: ignore[arg-type]
    pool = TabAssistants(base, offered=[base.settings.models.generator, "fake:hello"])
    assert pool.get(pool.defaults) is base
    dense = pool.get(pool.defaults.with_controls(False, False, "off", True, 4, ""))
    assert dense is not base and dense.settings.retrieval.mode == "dense"
    assert dense.embedder is fake_embedder and dense.generator is fake_generator and dense.store is base.store
    assert pool.get(pool.defaults.with_controls(False, False, "off", True, 4, "")) is dense
    other = pool.get(pool.defaults.with_controls(True, False, "off", True, 4, "fake:hello"))
    assert other.generator is not fake_generator and other.generator.generate([]) == "hello"


def test_only_offered_generators_can_be_picked(settings: Settings, fake_embedder, fake_generator) -> None:
    from assistant.assistant import Assistant

    base = Assistant(settings, embedder=fake_embedder, generator=fake_generator, store=object())  # type: ignore[arg-type]
    pool = TabAssistants(base)
    assert pool.offered[0] == settings.models.generator and "qwen2.5-coder-0.5b" in pool.offered
    assert not any(":" in name for name in pool.offered)  # no folder, endpoint or fake backends
    for sent in ("folder:/etc", "openai:gpt-4o", "transformers:/home/someone/model", "fake:hi"):
        with pytest.raises(ValueError, match="not offered here"):
            pool.get(pool.defaults.with_controls(True, False, "off", False, 4, sent))


def test_friendly_errors() -> None:
    assert friendly(ValueError("no such model")) == "no such model"
    assert friendly(KeyError("x")) == "KeyError: 'x'"


def test_status_html_marks_finished_turns() -> None:
    assert "Answering" in status_html(2) and "data-done" not in status_html(2)
    assert 'data-done="2"' in status_html(2, make_answer()) and "2 sources cited" in status_html(2, make_answer())
    assert "don&#x27;t hold" in status_html(1, Answer("x", (), (), True, Trace()))
    assert 'data-done="3"' in status_html(3, failed=True) and "failed" in status_html(3, failed=True)
