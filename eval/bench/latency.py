"""Latency per stage, p50 and p95, Tessera and vanilla llama-index side by side in one process.

Both pipelines index the same corpus with the same embedder and generator objects (loaded once, shared),
then answer the same questions, interleaved question by question so machine noise hits both alike:
- **retrieval only**: Tessera's `Assistant.search` (query embedding, BM25 vector, one fused Qdrant Edge
  query) against vanilla's retriever (query embedding, in-memory `SimpleVectorStore`), each at its defaults;
- **full answer** and **time to first token**: Tessera's `Assistant.stream` (retrieve, relevance gate,
  attention sorting, generate, check citations) against vanilla's streaming query engine.
Model loading is timed apart: the first query of a process pays it once, later ones never.

Run: ``python -m eval.bench.latency data/hotpotqa --questions 40 --answers 10``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def percentiles(values: list[float]) -> tuple[float, float]:
    """``(p50, p95)`` by the nearest-rank method."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def first_token(pieces: Iterable[Any]) -> tuple[float, float]:
    """``(seconds to the first text piece, seconds to the end)`` of a stream."""
    began, first = time.perf_counter(), None
    for piece in pieces:  # vanilla streams text; Tessera streams `TurnEvent`s
        text = piece if isinstance(piece, str) else getattr(piece, "text", "")
        if first is None and text:
            first = time.perf_counter() - began
    total = time.perf_counter() - began
    return (first if first is not None else total), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a dataset folder (tessera eval convert)")
    parser.add_argument("--docs", type=int, default=None, help="corpus documents to index (default: all)")
    parser.add_argument("--questions", type=int, default=40, help="questions for retrieval latency")
    parser.add_argument("--repeats", type=int, default=3, help="retrieval passes over the questions")
    parser.add_argument("--answers", type=int, default=10, help="questions answered in full by each pipeline")
    args = parser.parse_args()

    from assistant.assistant import Assistant
    from assistant.config import Settings
    from assistant.models.registry import create_embedder, create_generator
    from assistant.types import Document, Trace
    from eval.datasets import load_dataset
    from eval.vanilla import VanillaPipeline
    from ingestion.docstore import DocStore
    from ingestion.pipeline import Ingestor

    dataset = load_dataset(args.data)
    corpus = dataset.corpus[: args.docs] if args.docs else dataset.corpus
    documents = [Document(r.id, r.id, r.title, r.text, dict(r.metadata)) for r in corpus]
    questions = [q.question for q in dataset.questions[: args.questions]]

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home, ingestion={"propositions": "off"}, models={"cache_dir": Settings().model_cache})
        embedder, generator = create_embedder(settings), create_generator(settings)
        load_embedder, _ = timed(lambda: embedder.embed(["warm up"]))
        load_generator, _ = timed(generator.load)  # type: ignore[attr-defined]
        tessera = Assistant(settings, embedder=embedder, generator=generator)
        vanilla = VanillaPipeline(settings, embedder, generator)
        with DocStore(settings.docstore_path) as docstore:
            Ingestor(settings, embedder, tessera.store, docstore).index_documents([(d, d.id) for d in documents])
        vanilla.index(documents)
        print(f"indexed {len(documents)} documents ({tessera.store.count()} Tessera passages)")

        first_tessera, _ = timed(lambda: tessera.search(questions[0]))
        first_vanilla, _ = timed(lambda: vanilla.search(questions[0]))
        retrieval: dict[str, list[float]] = defaultdict(list)
        stages: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.repeats):
            for question in questions:
                trace = Trace()
                seconds, _ = timed(lambda: tessera.search(question, trace))
                retrieval["tessera"].append(seconds)
                for stage in trace.stages:
                    stages[stage.name].append(stage.seconds)
                retrieval["vanilla"].append(timed(lambda: vanilla.search(question))[0])

        answers: dict[str, dict[str, list[float]]] = {"tessera": defaultdict(list), "vanilla": defaultdict(list)}
        for question in questions[: args.answers]:
            trace = Trace()
            ttft, total = first_token(tessera.stream(question, trace=trace))
            answers["tessera"]["ttft"].append(ttft)
            answers["tessera"]["total"].append(total)
            for stage in trace.stages:
                answers["tessera"][stage.name].append(stage.seconds)
            ttft, total = first_token(vanilla.stream(question))
            answers["vanilla"]["ttft"].append(ttft)
            answers["vanilla"]["total"].append(total)
        tessera.close()

    ms = lambda xs: "{:.1f} / {:.1f}".format(*(1000 * v for v in percentiles(xs)))  # noqa: E731
    s = lambda xs: "{:.2f} / {:.2f}".format(*percentiles(xs))  # noqa: E731
    print(f"\nModel load, once per process: embedder {load_embedder:.2f} s, generator {load_generator:.2f} s.")
    print(f"First query of the process (after models loaded): Tessera {1000 * first_tessera:.1f} ms, "
          f"vanilla {1000 * first_vanilla:.1f} ms.")
    n = len(retrieval["tessera"])
    print(f"\nRetrieval only ({n} queries each, interleaved):\n\n| pipeline | p50 / p95 (ms) |\n|---|---|")
    for name in ("tessera", "vanilla"):
        print(f"| {name} | {ms(retrieval[name])} |")
    ratio = statistics.median(retrieval["tessera"]) / statistics.median(retrieval["vanilla"])
    print(f"\nTessera / vanilla retrieval p50: {ratio:.2f}")
    print("\nTessera retrieval stages:\n\n| stage | p50 / p95 (ms) |\n|---|---|")
    for name, values in stages.items():
        print(f"| {name} | {ms(values)} |")
    k = len(answers["tessera"]["total"])
    print(f"\nFull answers ({k} questions each):\n\n| pipeline | stage | p50 / p95 (s) |\n|---|---|---|")
    for pipeline, rows in answers.items():
        for stage, values in rows.items():
            print(f"| {pipeline} | {stage} | {s(values)} |")
    for key in ("ttft", "total"):
        r = statistics.median(answers["tessera"][key]) / statistics.median(answers["vanilla"][key])
        print(f"Tessera / vanilla {key} p50: {r:.2f}")


if __name__ == "__main__":
    main()
