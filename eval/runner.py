"""`tessera eval run`: index a dataset's corpus, answer every question, score it, write the run folder.

A run folder holds ``answers.jsonl`` (one line per question, appended as each is answered, so an
interrupted run resumes where it stopped), ``summary.json`` (aggregates, settings, versions) and
``report.md`` with its plots.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from tqdm import tqdm

from assistant.config import Settings
from assistant.models.local import resolve_dtype
from assistant.types import Answer, Document, Hit, Trace, to_dict
from eval.datasets import Dataset, QuestionRecord, load_dataset
from eval.metrics import (
    best_over_golds,
    contains_answer,
    mentions_conflict,
    exact_match,
    mrr_at_k,
    ndcg_at_k,
    passage_recall_at_k,
    recall_at_k,
    strip_citations,
    token_f1,
)
from eval.ragas_metrics import RagasEvaluator, RagasSample
from ingestion.metadata import describe

Pipeline = Literal["tessera", "vanilla"]
RETRIEVAL_KS = (1, 5, 10, 20)


class QA(Protocol):
    """What the runner needs of a pipeline: answer a question, and retrieve deeper for the metrics."""

    def ask(self, question: str) -> Answer: ...

    def search(self, question: str, trace: Trace | None = None, *, top_k: int | None = None) -> list[Hit]: ...


# Trace stages that are part of retrieval (query steps, search, legs), summed into a row's retrieval latency.
RETRIEVAL_STAGES = ("rewrite", "decompose", "embed_query", "hyde", "expand", "csqe", "metadata", "search", "rerank", "legs", "retrieve", "llm_replayed")


@dataclass(frozen=True)
class RunConfig:
    """One evaluation run's inputs."""

    data_dir: Path
    out_dir: Path
    pipeline: Pipeline = "tessera"
    limit: int | None = None
    seed: int = 0
    progress: bool = True
    retrieval_only: bool = False
    force: bool = False  # start over even if ``out_dir`` holds rows of another configuration
    without: tuple[str, ...] = ()  # stages taken out of Tessera's pipeline (an ablation)
    engine: str = "local"  # or "ray": questions answered by a pool of Ray actors (eval/ray_eval.py)
    workers: int = 2  # Ray actors, each with its own copy of the index and its own models
    ray_address: str | None = None  # a running Ray cluster; None starts a local one


def sample_questions(dataset: Dataset, limit: int | None, seed: int) -> list[QuestionRecord]:
    """The questions to run: all, or a seeded sample of ``limit`` in their original order."""
    questions = dataset.questions
    if limit is None or limit >= len(questions):
        return list(questions)
    chosen = set(random.Random(seed).sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in chosen]


def corpus_documents(dataset: Dataset) -> list[Document]:
    """The corpus as Tessera documents; the corpus id is the document id, so hits map to evidence ids."""
    return [Document(r.id, r.id, r.title, r.text, dict(r.metadata)) for r in dataset.corpus]


def index_key(dataset: Dataset, settings: Settings) -> str:
    """Names an index by the corpus content and every setting that changes what is indexed."""
    digest = hashlib.sha256()
    described = False
    for record in dataset.corpus:
        digest.update(f"{record.id}\0{record.title}\0{record.text}\0".encode())
        if about := describe(record.metadata):  # site, author, dates: payload fields and the header line
            digest.update(json.dumps(about, sort_keys=True).encode())
            described = True
    digest.update(settings.models.embedder.encode())
    if settings.models.embedder == "e5-small":
        from assistant.models.e5 import batch_runtime

        if batch_runtime(settings.models.e5_runtime) == "torch":  # indexes built before it keep their keys
            digest.update(b"e5:torch")
    digest.update(str(resolve_dtype(settings.models.embedder_dtype)).encode())  # bf16 and fp32 vectors differ slightly
    ingestion = settings.ingestion
    if not described:  # no metadata: the header line is empty either way, so the index is the same
        ingestion = ingestion.model_copy(update={"metadata_header": False})
    digest.update(ingestion.model_dump_json(exclude={"max_file_mb", "batch_size", "max_unpacked_mb", "parse_timeout_s", "parse_memory_mb"}).encode())
    if settings.ingestion.propositions == "llm":  # the model that writes them changes what is indexed
        digest.update(settings.models.generator.encode())
    return digest.hexdigest()[:16]


def score_question(question: QuestionRecord, answer: Answer | None, deep_hits: list[Hit]) -> dict[str, Any]:
    """Per-question answer and retrieval metrics (retrieval only without an answer). Metrics that don't
    apply are absent, not 0."""
    metrics: dict[str, Any] = {}
    if answer is not None:
        prediction = "" if answer.abstained else strip_citations(answer.text)
        golds = list(question.answers) or [""]
        metrics.update(
            em=best_over_golds(exact_match, prediction, golds),
            f1=best_over_golds(token_f1, prediction, golds),
            abstained=answer.abstained,
        )
        if fake := question.metadata.get("fakeanswer"):  # RGB counterfactual: true and falsified passages
            parts = question.metadata.get("answer_parts") or [list(question.answers)]
            metrics["rgb.correct"] = float(contains_answer(prediction, parts))
            metrics["rgb.fooled"] = float(contains_answer(prediction, [[fake]]))
            metrics["rgb.says_conflict"] = float(mentions_conflict(answer.text))
    # Retrieval is judged on answerable questions only: an unanswerable one's "evidence" is the text it
    # was written to trick, which no retriever should be rewarded or punished for finding.
    if question.evidence_ids and question.answerable:
        ranked = [h.doc_id for h in deep_hits]
        for k in RETRIEVAL_KS:
            metrics[f"recall@{k}"] = recall_at_k(ranked, question.evidence_ids, k)
        # A question that needs several documents is answered only when all of them are found.
        metrics["all_evidence@10"] = float(metrics["recall@10"] == 1.0)
        metrics["mrr@10"] = mrr_at_k(ranked, question.evidence_ids, 10)
        metrics["ndcg@10"] = ndcg_at_k(ranked, question.evidence_ids, 10)
    evidence_texts = question.metadata.get("evidence_texts") or []
    if evidence_texts and question.answerable:
        texts = [h.text for h in deep_hits]
        for k in (5, 20):
            metrics[f"passage_recall@{k}"] = passage_recall_at_k(texts, evidence_texts, k)
    return metrics


class EvalRunner:
    """Runs one evaluation; see the module docstring for what it writes.

    Args:
        settings: Tessera's settings for this run (``--set`` overrides already applied).
        config: Data, output folder, pipeline, sampling.
    """

    def __init__(self, settings: Settings, config: RunConfig) -> None:
        if not (config.data_dir / "questions.jsonl").exists():
            raise FileNotFoundError(
                f"{config.data_dir} is not a dataset folder (no questions.jsonl): "
                "make one with `tessera eval convert FORMAT SOURCE OUT_DIR`"
            )
        self.settings = settings
        self.config = config
        self._caches: list[Any] = []  # the CachedGenerators (answering and query steps), when eval.llm_cache is on

    def run(self) -> dict[str, Any]:
        """Answers every question not yet in ``answers.jsonl``, then writes the summary and report."""
        from eval.report import summarise, write_report

        began = time.perf_counter()
        dataset = load_dataset(self.config.data_dir)
        questions = sample_questions(dataset, self.config.limit, self.config.seed)
        out = self.config.out_dir
        out.mkdir(parents=True, exist_ok=True)
        answers_path = out / "answers.jsonl"
        _drop_partial_line(answers_path)
        if self.config.retrieval_only:  # the others have no retrieval metric to compute
            questions = [q for q in questions if q.answerable and q.evidence_ids]
        done = _answered_ids(answers_path)
        check_same_run(out, run_record(self.settings, self.config), resuming=bool(done), force=self.config.force)
        if self.config.force and done:
            answers_path.unlink()
            done = set()
        todo = [q for q in questions if q.id not in done]
        if todo:
            judged_ids = {q.id for q in questions[: self.settings.eval.judge_sample]}
            if self.config.engine == "ray" and self.config.pipeline == "tessera":
                from eval.ray_eval import answer_with_ray

                with self.qa_pipeline(dataset):
                    pass  # builds the index (or finds it built); the actors answer from copies of it
                with answers_path.open("a") as sink:
                    for row in answer_with_ray(self, dataset, todo, judged_ids):
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                        sink.flush()
            else:
                with self.qa_pipeline(dataset) as qa, answers_path.open("a") as sink:
                    evaluators = (None, None) if self.config.retrieval_only else self.ragas_evaluators()
                    corpus = {r.id: r.text for r in dataset.corpus}
                    for question in tqdm(todo, desc="questions", unit="q", disable=not self.config.progress):
                        row = self.row(qa, question, evaluators, question.id in judged_ids, corpus)
                        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                        sink.flush()
        rows = [r for r in _read_rows(answers_path) if r["id"] in {q.id for q in questions}]
        summary = summarise(rows, self.settings, dataset, self.config, time.perf_counter() - began)
        marker = self.index_settings(dataset).home / "complete"
        if self.config.pipeline == "tessera" and marker.exists():
            summary["index"] = json.loads(marker.read_text())  # what building the cached index took
        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        write_report(out, rows, summary)
        return summary

    def row(
        self, qa: QA, question: QuestionRecord, evaluators: tuple[Any, Any], judged: bool, corpus: dict[str, str]
    ) -> dict[str, Any]:
        """One question's row of ``answers.jsonl``: retrieval only, or the answer with its metrics; ``evaluators``
        are the RAGAS evaluators for the judged sample and for the rest (None, None for retrieval only)."""
        replayed = self._replayed_seconds()
        if evaluators[0] is None or evaluators[1] is None:
            row = self._retrieve_one(qa, question)
        else:
            row = self._answer_one(qa, question, evaluators[0] if judged else evaluators[1], corpus)
        if (extra := self._replayed_seconds() - replayed) > 0:
            row["timings"]["llm_replayed"] = extra
        row["timings"]["retrieval_total"] = sum(row["timings"].get(k, 0.0) for k in RETRIEVAL_STAGES)
        return row

    def _answer_one(
        self, qa: QA, question: QuestionRecord, ragas: RagasEvaluator, corpus: dict[str, str]
    ) -> dict[str, Any]:
        answer = qa.ask(question.question)
        deep = qa.search(question.question, top_k=self.settings.eval.depth)  # reuses the question's query plan
        metrics = score_question(question, answer, deep)
        # RAGAS' reference contexts are the gold evidence documents (what a perfect retriever returns).
        references = [corpus[e] for e in question.evidence_ids if e in corpus] if question.answerable else []
        sample = RagasSample(
            question=question.question,
            answer="" if answer.abstained else strip_citations(answer.text),
            contexts=[h.text for h in answer.contexts],
            reference=question.answers[0] if question.answers else None,
            reference_contexts=references or None,
        )
        ragas_values = ragas.score([sample])[0]
        metrics.update({f"ragas.{k}": v.value for k, v in ragas_values.items()})
        missing = {f"ragas.{k}": v.reason for k, v in ragas_values.items() if v.value is None}
        return {
            "id": question.id,
            "question": question.question,
            "gold": list(question.answers),
            "answerable": question.answerable,
            "answer": answer.text,
            "abstained": answer.abstained,
            "contexts": [h.text for h in answer.contexts],
            "context_ids": [h.doc_id for h in answer.contexts],
            "retrieved_ids": [h.doc_id for h in deep],
            "citations": [{"n": c.n, "doc_id": c.hit.doc_id, "source": c.hit.source} for c in answer.citations],
            "metrics": metrics,
            "missing": missing,
            "timings": {s.name: s.seconds for s in answer.trace.stages},
            "trace": to_dict(answer.trace),
        }

    def _retrieve_one(self, qa: QA, question: QuestionRecord) -> dict[str, Any]:
        """Retrieval only (``--retrieval-only``): the deep hits and their metrics, no generation."""
        trace = Trace()
        deep = qa.search(question.question, trace, top_k=self.settings.eval.depth)
        return {
            "id": question.id,
            "question": question.question,
            "gold": list(question.answers),
            "answerable": question.answerable,
            "retrieved_ids": [h.doc_id for h in deep],
            "metrics": score_question(question, None, deep),
            "missing": {},
            "timings": {s.name: s.seconds for s in trace.stages},
            "trace": to_dict(trace),
        }

    def _replayed_seconds(self) -> float:
        return sum(cache.replayed_seconds for cache in self._caches)

    def ragas_evaluators(self) -> tuple[RagasEvaluator, RagasEvaluator]:
        """The evaluator for questions in the judged sample, and the one (without judge) for the rest. The
        judge scores only the metrics it is trusted on (`eval.judge_agreement.left_out`)."""
        from assistant.models.registry import create_embedder, create_generator
        from eval.judge_agreement import left_out, load_agreement

        embedder, name = create_embedder(self.settings), self.settings.eval.judge
        if not name:
            plain = RagasEvaluator(embedder)
            return plain, plain
        outside = f"outside the judged sample (the first eval.judge_sample={self.settings.eval.judge_sample} questions)"
        skip = left_out(self.settings.eval.judge_metrics, load_agreement(name, self.settings.home))
        judge = create_generator(self.settings, name)
        return RagasEvaluator(embedder, judge, skip=skip), RagasEvaluator(embedder, None, no_judge_reason=outside)

    @contextmanager
    def qa_pipeline(self, dataset: Dataset) -> Iterator[QA]:
        """Builds (or reuses) the index and yields the pipeline that answers."""
        from assistant.models.registry import create_embedder, create_generator

        if self.config.pipeline == "vanilla":
            from eval.vanilla import VanillaPipeline

            vanilla = VanillaPipeline(self.settings, create_embedder(self.settings), create_generator(self.settings))
            vanilla.index(corpus_documents(dataset))  # in memory, as a user of plain llama-index would
            yield vanilla
            return
        from assistant.assistant import Assistant

        index_settings = self.index_settings(dataset)
        generator = create_generator(index_settings)
        name = index_settings.query.generator
        query_generator = create_generator(index_settings, name) if name and name != index_settings.models.generator else None
        if self.settings.eval.llm_cache:
            from eval.llm_cache import CachedGenerator

            path = self.settings.home / "eval-llm-cache.sqlite"
            generator = CachedGenerator(generator, path)
            self._caches.append(generator)
            if query_generator is not None:  # its replies are cached too (keys hold the model's name)
                query_generator = CachedGenerator(query_generator, path)
                self._caches.append(query_generator)
        assistant = Assistant(index_settings, generator=generator, query_generator=query_generator, without=self.config.without)
        assistant.pipeline  # noqa: B018 - an ablation that cannot run stops here, before the index is built
        try:
            self._ensure_index(assistant, dataset, index_settings)
            yield assistant
        finally:
            assistant.close()
            for cache in self._caches:
                cache.close()

    def index_settings(self, dataset: Dataset) -> Settings:
        """The run's settings with ``home`` moved to the cached index for this corpus and these settings."""
        home = self.settings.home / "eval-index" / index_key(dataset, self.settings)
        models = self.settings.models.model_copy(update={"cache_dir": self.settings.model_cache})
        return self.settings.model_copy(update={"home": home, "models": models})

    def _ensure_index(self, assistant: Any, dataset: Dataset, settings: Settings) -> None:
        from ingestion.docstore import DocStore
        from ingestion.pipeline import Ingestor
        from ingestion.propositions import build_extractor

        marker = settings.home / "complete"
        if marker.exists():
            return
        began = time.perf_counter()
        extractor = build_extractor(settings)
        with DocStore(settings.docstore_path) as docstore:
            ingestor = Ingestor(settings, assistant.embedder, assistant.store, docstore, extractor)
            todo = []
            for document in corpus_documents(dataset):
                content = hashlib.sha256(document.text.encode()).hexdigest()
                if docstore.content_hash(document.source) != content:  # resumes an interrupted build
                    todo.append((document, content))
            passages, propositions = ingestor.index_documents(todo, progress=self.config.progress)
        built = {  # of this build; a resumed build counts only the documents it indexed
            "documents": len(dataset.corpus),
            "documents_indexed": len(todo),
            "passages": passages,
            "propositions": propositions,
            "seconds": round(time.perf_counter() - began, 1),
            "extractor": settings.ingestion.propositions,
        }
        if stats := getattr(extractor, "stats", None):  # the LLM propositionizer's valid / fallback counts
            built["extractor_stats"] = dict(stats)
        marker.write_text(json.dumps(built))


def _drop_partial_line(path: Path) -> None:
    """Cuts a last line left half-written by a kill, so appended rows start on a line of their own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


# Settings that change where or how fast a run works, not what it answers: a resume may differ in them.
_NOT_RESULTS = {"home": True, "models": {"openai_api_key", "threads", "cache_dir"}, "store": {"qdrant_api_key"}}


class RunMismatch(ValueError):
    """A run folder holds answers of another configuration; the message names what differs and what to do."""


def run_record(settings: Settings, config: RunConfig) -> dict[str, Any]:
    """What decides a run's answers: the pipeline (and the stages taken out of it), retrieval-only or not,
    and the settings."""
    return {
        "pipeline": config.pipeline,
        "without": list(config.without),
        "retrieval_only": config.retrieval_only,
        "settings": settings.model_dump(mode="json", exclude=_NOT_RESULTS),
    }


def check_same_run(out: Path, record: dict[str, Any], *, resuming: bool, force: bool) -> None:
    """Records the run's configuration in ``run.json``; refuses to resume rows made with another one.

    Raises:
        RunMismatch: ``out`` holds answers and its ``run.json`` differs (unless ``force``).
    """
    path = out / "run.json"
    if resuming and not force and path.exists():
        earlier = json.loads(path.read_text())
        if earlier != record:
            changed = ", ".join(_differences(earlier, record)[:5])
            raise RunMismatch(
                f"{out} holds answers made with another configuration ({changed}); "
                "use another --out, or --force to start this one over"
            )
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False))


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """``key: old → new`` for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new)) for d in _differences(old.get(key), new.get(key), f"{where}.{key}".lstrip("."))]
    return [] if old == new else [f"{where}: {old!r} → {new!r}"]


def _answered_ids(path: Path) -> set[str]:
    return {row["id"] for row in _read_rows(path)} if path.exists() else set()


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of answers.jsonl (complete lines only: `_drop_partial_line` removes a torn one)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
