"""`tessera eval run` end to end with fake models: files written, resume, judge/no judge, vanilla."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.config import Settings
from eval.datasets import CorpusRecord, Dataset, QuestionRecord, save_dataset
from eval.runner import EvalRunner, RunConfig, RunMismatch, sample_questions, score_question
from assistant.models.base import Message
from assistant.types import Answer, Hit, Trace


def tiny_dataset(folder: Path) -> Path:
    corpus = [
        CorpusRecord("lakes", "Lakes", "Lake Baikal is the deepest lake in the world, 1,642 metres deep.", {}),
        CorpusRecord("towers", "Towers", "The Eiffel Tower is in Paris and is 330 metres tall.", {}),
        CorpusRecord("rivers", "Rivers", "The Nile is a long river in Africa flowing to the Mediterranean.", {}),
    ]
    questions = [
        QuestionRecord("q1", "How deep is Lake Baikal?", ("1,642 metres",), ("lakes",), None, {"evidence_texts": ["1,642 metres"]}),
        QuestionRecord("q2", "How tall is the Eiffel Tower?", ("330 metres",), ("towers",), None, {}),
        QuestionRecord("q3", "Who painted the Nile river?", (), ("rivers",), None, {}),
    ]
    save_dataset(Dataset("tiny", corpus, questions, {"name": "tiny"}), folder)
    return folder


@pytest.fixture
def fake_settings(settings: Settings) -> Settings:
    models = settings.models.model_copy(update={"embedder": "fake", "generator": "fake"})
    return settings.model_copy(update={"models": models, "eval": settings.eval.model_copy(update={"judge": None})})


def run(settings: Settings, data: Path, out: Path, **kwargs) -> dict:
    return EvalRunner(settings, RunConfig(data, out, progress=False, **kwargs)).run()


def test_run_writes_answers_summary_and_report(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    summary = run(fake_settings, data, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert {"answer", "contexts", "citations", "metrics", "trace", "timings"} <= set(rows[0])
    assert summary["questions"] == 3 and summary["answerable"] == 2
    assert summary["metrics"]["recall@5"]["n"] == 2  # retrieval judged on answerable questions only
    assert summary["metrics"]["recall@5"]["mean"] == 1.0  # three documents: all are in the top 5
    assert summary["settings"]["models"]["generator"] == "fake"
    assert "ragas" in summary["versions"]
    # the fake generator says "I don't know." -> every answer abstains: abstention recall 1, precision 1/3
    assert summary["abstention"]["recall"] == 1.0
    assert summary["abstention"]["precision"] == pytest.approx(1 / 3)
    reasons = summary["missing"]["ragas.faithfulness"]["reasons"]
    assert reasons == ["no judge model configured (set eval.judge)"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "recall@5" in report and "no judge model configured" in report
    assert (tmp_path / "run" / "metrics.png").stat().st_size > 0
    assert (tmp_path / "run" / "latency.png").stat().st_size > 0
    index = summary["index"]  # what building the cached index took
    assert index["documents"] == index["documents_indexed"] == 3 and index["passages"] == 3
    assert index["propositions"] == 0 and index["extractor"] == "off" and index["seconds"] >= 0  # passages only, by default
    again = run(fake_settings, data, tmp_path / "run2")
    assert again["index"] == index  # a cached index reports how it was built, not a rebuild


def test_interrupted_run_resumes(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "run"
    run(fake_settings, data, out)
    lines = (out / "answers.jsonl").read_text().splitlines()
    # Simulate a kill after the first answer, in the middle of writing the second line.
    (out / "answers.jsonl").write_text(lines[0] + "\n" + lines[1][:25])
    summary = run(fake_settings, data, out)
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    assert summary["questions"] == 3
    # The cached index is reused: the marker exists and a third run answers nothing new.
    assert list((fake_settings.home / "eval-index").glob("*/complete"))


def test_a_resume_with_other_settings_stops_or_starts_over_with_force(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    out = tmp_path / "run"
    run(fake_settings, data, out, limit=1)
    assert json.loads((out / "run.json").read_text())["settings"]["retrieval"]["mode"] == "hybrid"
    dense = fake_settings.model_copy(update={"retrieval": fake_settings.retrieval.model_copy(update={"mode": "dense"})})
    with pytest.raises(RunMismatch, match=r"retrieval\.mode: 'hybrid' → 'dense'.*--force"):
        run(dense, data, out)
    with pytest.raises(RunMismatch, match="retrieval_only: False → True"):
        run(fake_settings, data, out, retrieval_only=True)
    with pytest.raises(RunMismatch, match=r"without: \[\] → \['relevance_gate'\]"):  # an ablation is another run
        run(fake_settings, data, out, without=("relevance_gate",))
    assert len((out / "answers.jsonl").read_text().splitlines()) == 1  # nothing was mixed in
    summary = run(dense, data, out, force=True)
    assert summary["settings"]["retrieval"]["mode"] == "dense" and summary["questions"] == 3
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2", "q3"]
    # Another home (where the models and the index cache live) is not another configuration.
    moved = dense.model_copy(update={"home": tmp_path / "elsewhere"})
    run(moved, data, out)


def test_an_ablated_run_answers_without_the_stage(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    run(fake_settings, data, tmp_path / "run", without=("relevance_gate",))
    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    assert rows and all("relevance_gate" not in r["timings"] and "generate" in r["timings"] for r in rows)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["without"] == ["relevance_gate"]
    with pytest.raises(ValueError, match="no stage named gate"):
        run(fake_settings, data, tmp_path / "run2", without=("gate",))


def test_judge_configured_attempts_judged_metrics(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    judged = fake_settings.model_copy(update={"eval": fake_settings.eval.model_copy(update={"judge": "fake"})})
    summary = run(judged, data, tmp_path / "run", limit=1, seed=0)
    reasons = " ".join(summary["missing"].get("ragas.faithfulness", {}).get("reasons", []))
    assert "no judge model configured" not in reasons


def test_only_the_judged_sample_is_judged_and_the_report_shows_the_judges_agreement(
    fake_settings: Settings, tmp_path: Path
) -> None:
    data = tiny_dataset(tmp_path / "data")
    record = {"judge": "fake", "threshold": 0.5, "commit": "abc1234", "command": "python -m eval.judge_agreement --judge fake",
              "metrics": {"faithfulness": {"accuracy": 0.8, "kappa": 0.6, "auc": 0.9, "n": 40, "failed": 2},
                          "context_recall": {"accuracy": 0.55, "kappa": 0.1, "auc": 0.6, "n": 40, "failed": 0}}}
    (fake_settings.home / "judge-agreement").mkdir(parents=True)
    (fake_settings.home / "judge-agreement" / "fake.json").write_text(json.dumps(record))
    judged = fake_settings.model_copy(update={"eval": fake_settings.eval.model_copy(update={"judge": "fake", "judge_sample": 1})})
    summary = run(judged, data, tmp_path / "run", limit=3, seed=0)
    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    outside = [r for r in rows if "outside the judged sample" in (r["missing"].get("ragas.faithfulness") or "")]
    assert len(outside) == 2  # one of three questions was judged
    judged_row = next(r for r in rows if r not in outside)
    # Scored where the judge is trusted (κ 0.6); left out, saying why, where it is not (κ 0.1) or unmeasured.
    assert "does not agree" not in (judged_row["missing"].get("ragas.faithfulness") or "")
    assert "does not agree with labels" in judged_row["missing"]["ragas.context_recall"]
    assert "not measured" in judged_row["missing"]["ragas.answer_relevancy"]
    assert summary["judge"]["name"] == "fake" and summary["judge"]["agreement"]["commit"] == "abc1234"
    report = (tmp_path / "run" / "report.md").read_text()
    assert "scored by `fake` on the first 1 questions" in report
    assert "| ragas.faithfulness | 0.800 | 0.600 | 0.900 | 40 | 2 | yes |" in report
    assert "| ragas.context_recall | 0.550 | 0.100 | 0.600 | 40 | 0 | no: κ ≤ 0.4 |" in report
    assert "Left out: ragas.answer_relevancy" in report


def test_judge_metrics_overrides_the_measured_choice(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    record = {"judge": "fake", "threshold": 0.5, "commit": "abc1234", "command": "c",
              "metrics": {"context_recall": {"accuracy": 0.55, "kappa": 0.1, "auc": 0.6, "n": 40, "failed": 0}}}
    (fake_settings.home / "judge-agreement").mkdir(parents=True)
    (fake_settings.home / "judge-agreement" / "fake.json").write_text(json.dumps(record))
    chosen = fake_settings.eval.model_copy(update={"judge": "fake", "judge_metrics": ["context_recall"]})
    run(fake_settings.model_copy(update={"eval": chosen}), data, tmp_path / "run", limit=1, seed=0)
    row = json.loads((tmp_path / "run" / "answers.jsonl").read_text().splitlines()[0])
    assert "does not agree" not in (row["missing"].get("ragas.context_recall") or "")
    assert row["missing"]["ragas.faithfulness"] == "not in eval.judge_metrics"


def test_a_judge_never_measured_is_flagged_in_the_report(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    judged = fake_settings.model_copy(update={"eval": fake_settings.eval.model_copy(update={"judge": "fake", "judge_sample": 0})})
    run(judged, data, tmp_path / "run", limit=1, seed=0)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "agreement with labels was never measured" in report and "--judge fake" in report


def test_vanilla_pipeline_runs_on_the_same_dataset(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    summary = run(fake_settings, data, tmp_path / "vanilla", pipeline="vanilla")
    assert summary["pipeline"] == "vanilla" and summary["questions"] == 3
    assert "recall@5" in summary["metrics"]


def test_missing_dataset_folder_is_a_clear_error(fake_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tessera eval convert"):
        EvalRunner(fake_settings, RunConfig(tmp_path, tmp_path / "out"))


def test_sample_questions_is_seeded(tmp_path: Path) -> None:
    from eval.datasets import load_dataset

    dataset = load_dataset(tiny_dataset(tmp_path / "data"))
    assert sample_questions(dataset, 2, 1) == sample_questions(dataset, 2, 1)
    assert len(sample_questions(dataset, None, 0)) == 3


def test_score_question_by_hand() -> None:
    question = QuestionRecord("q", "How deep?", ("1,642 metres",), ("lakes",), None, {"evidence_texts": ["1,642 metres"]})
    hits = [Hit("t:0", "Eiffel", 1.0, "towers", "t:0", "towers"), Hit("l:0", "It is 1,642 metres deep", 0.5, "lakes", "l:0", "lakes")]
    answer = Answer("1,642 metres [2]", (), tuple(hits), False, Trace())
    metrics = score_question(question, answer, hits)
    assert metrics["em"] == 1.0 and metrics["recall@1"] == 0.0 and metrics["recall@5"] == 1.0
    assert metrics["mrr@10"] == 0.5 and metrics["passage_recall@5"] == 1.0
    unanswerable = QuestionRecord("u", "Who?", (), ("lakes",), None, {})
    abstained = Answer("The documents don't say.", (), tuple(hits), True, Trace())
    scored = score_question(unanswerable, abstained, hits)
    assert scored["em"] == 1.0 and "recall@5" not in scored
    rgb = QuestionRecord("r", "Super Bowl 2021 location", ("Tampa, Florida",), ("lakes",), None, {"fakeanswer": "Glendale, Arizona"})
    fooled = score_question(rgb, Answer("Glendale, Arizona [1]", (), tuple(hits), False, Trace()), hits)
    assert (fooled["rgb.correct"], fooled["rgb.fooled"], fooled["rgb.says_conflict"]) == (0.0, 1.0, 0.0)
    torn = score_question(rgb, Answer("Sources disagree: Tampa, Florida [1] or Glendale, Arizona [2]", (), tuple(hits), False, Trace()), hits)
    assert (torn["rgb.correct"], torn["rgb.fooled"], torn["rgb.says_conflict"]) == (1.0, 1.0, 1.0)


def test_retrieval_only_run_scores_retrieval_and_times_the_query_steps(fake_settings: Settings, tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    settings = fake_settings.model_copy(update={"query": fake_settings.query.model_copy(update={"hyde": True})})
    summary = run(settings, data, tmp_path / "run", retrieval_only=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q1", "q2"]  # the unanswerable q3 has no retrieval metric
    assert "answer" not in rows[0] and "em" not in summary["metrics"]
    assert summary["retrieval_only"] is True and summary["metrics"]["recall@5"]["mean"] == 1.0
    timings = rows[0]["timings"]
    assert {"embed_query", "hyde", "search"} <= set(timings)
    assert timings["retrieval_total"] == pytest.approx(sum(v for k, v in timings.items() if k != "retrieval_total"))


def test_a_separate_query_generator_is_cached_too(fake_settings: Settings, tmp_path: Path) -> None:
    import sqlite3

    data = tiny_dataset(tmp_path / "data")
    passage = "Lake Baikal in Siberia is the deepest lake on Earth."
    query = fake_settings.query.model_copy(update={"hyde": True, "generator": f"fake:{passage}"})
    settings = fake_settings.model_copy(update={"query": query})
    run(settings, data, tmp_path / "run", retrieval_only=True)
    with sqlite3.connect(settings.home / "eval-llm-cache.sqlite") as db:
        replies = [text for (text,) in db.execute("SELECT text FROM replies")]
    assert replies == [passage, passage]  # one HyDE call per answerable question, both kept for the next row
    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    hyde = [s for s in rows[0]["trace"]["stages"] if s["name"] == "hyde"][0]
    assert hyde["details"]["passages"] == [passage]


def test_llm_cache_replays_a_reply_and_charges_its_original_time(tmp_path: Path) -> None:
    from assistant.models.fake import FakeGenerator
    from eval.llm_cache import CachedGenerator

    inner = FakeGenerator(["first reply", "second reply"])
    cached = CachedGenerator(inner, tmp_path / "cache.sqlite")
    messages = [Message("user", "Where is Lake Baikal?")]
    assert cached.generate(messages, max_new_tokens=8) == "first reply"
    assert cached.generate(messages, max_new_tokens=8) == "first reply"  # replayed, not asked again
    assert len(inner.calls) == 1 and cached.hits == 1 and cached.replayed_seconds >= 0
    assert cached.generate(messages, max_new_tokens=9) == "second reply"  # another token limit is another call
    assert cached.generate(messages, temperature=0.7) != ""  # sampled calls are never cached
    assert len(inner.calls) == 3
    cached.close()
    reopened = CachedGenerator(FakeGenerator(), tmp_path / "cache.sqlite")
    assert reopened.generate(messages, max_new_tokens=8) == "first reply"  # survives the process


def test_llm_cache_replays_a_judgement_too(tmp_path: Path) -> None:
    from assistant.models.fake import FakeGenerator
    from eval.llm_cache import CachedGenerator

    class Judge(FakeGenerator):
        asked = 0

        def next_token_logprobs(self, messages, options):
            self.asked += 1
            return {"Yes": -0.5, "No": -1.0}

    inner = Judge()
    cached = CachedGenerator(inner, tmp_path / "cache.sqlite")
    messages = [Message("user", "Is this relevant?")]
    assert cached.next_token_logprobs(messages, ("Yes", "No")) == {"Yes": -0.5, "No": -1.0}
    assert cached.next_token_logprobs(messages, ("Yes", "No")) == {"Yes": -0.5, "No": -1.0}
    assert inner.asked == 1 and cached.hits == 1
    assert cached.generate(messages, max_new_tokens=0) == "I don't know."  # a reply is not a judgement
    cached.close()


@pytest.mark.integration
def test_eval_run_judges_offline_with_a_bundled_judge(settings: Settings, tmp_path: Path) -> None:
    # The fake generator answers (the real small ones may abstain, leaving nothing to judge); the real
    # embedder and Qwen 0.5B (the cheaper bundled judge; the default 1.5B takes ~50 s a question) score.
    # Unless told otherwise the judge scores only what its measured agreement supports: relevancy here.
    data = tiny_dataset(tmp_path / "data")
    answering = "fake:The Eiffel Tower is 330 metres tall [1]."
    real = settings.model_copy(update={"models": settings.models.model_copy(update={"generator": answering}),
                                       "eval": settings.eval.model_copy(update={"judge": "qwen2.5-coder-0.5b"})})
    summary = run(real, data, tmp_path / "run", limit=2, seed=0)
    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    scored = [r["metrics"]["ragas.answer_relevancy"] for r in rows if "ragas.answer_relevancy" not in r["missing"]]
    assert scored and all(0.0 <= s <= 1.0 for s in scored), rows
    assert all("does not agree with labels" in r["missing"]["ragas.faithfulness"] for r in rows)
    assert summary["judge"]["agreement"]["metrics"]["answer_relevancy"]["kappa"] > 0.4
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Judge" in report and "| ragas.answer_relevancy |" in report and "| yes |" in report


def test_the_default_judge_is_measured_and_trusted_on_faithfulness(settings: Settings) -> None:
    from eval.judge_agreement import left_out, load_agreement

    record = load_agreement(settings.eval.judge or "", settings.home)
    assert record is not None, f"no shipped agreement record for the default judge {settings.eval.judge}"
    assert "faithfulness" not in left_out(settings.eval.judge_metrics, record)


def test_the_index_key_changes_with_what_is_indexed_only(fake_settings: Settings, tmp_path: Path) -> None:
    from eval.datasets import load_dataset
    from eval.runner import index_key

    plain = load_dataset(tiny_dataset(tmp_path / "plain"))
    header_off = fake_settings.model_copy(update={"ingestion": fake_settings.ingestion.model_copy(update={"metadata_header": False})})
    header_on = fake_settings.model_copy(update={"ingestion": fake_settings.ingestion.model_copy(update={"metadata_header": True})})
    assert index_key(plain, header_off) == index_key(plain, header_on)  # no site/author/date: the same index
    corpus = [CorpusRecord("a", "A", "Text.", {"site": "Meridian Post"})]
    described = Dataset("d", corpus, [QuestionRecord("q", "Text?", ("Text",), ("a",), None, {})], {"name": "d"})
    assert index_key(described, header_off) != index_key(described, header_on)
    other_site = Dataset("d", [CorpusRecord("a", "A", "Text.", {"site": "Summit Wire"})], described.questions, described.manifest)
    assert index_key(described, header_on) != index_key(other_site, header_on)  # the payload holds the site
