"""What batching, length-sorted batches and the embedding cache each buy, measured side by side in one run.

- **Batching**: texts per forward pass, 1 against the default 32.
- **Length-sorted batches**: a batch pads to its longest text; grouping similar lengths wastes less compute.
- **Embedding cache** (`assistant.models.embedding_cache`): re-ingesting documents after editing one
  sentence in each embeds only the passages that changed. The documents are built by joining 20 corpus
  passages each, so every document spans many passages, as real files do.
- **Warm process**: the first query of a process against later ones, and `Assistant.warm_up()`.

Run: ``python -m eval.bench.embed data/hotpotqa --texts 512``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def rate(embedder: object, texts: list[str], repeats: int = 2) -> float:
    """Texts per second, best of ``repeats`` passes."""
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        embedder.embed(texts)  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - began)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a dataset folder (tessera eval convert)")
    parser.add_argument("--texts", type=int, default=512, help="corpus passages embedded per variant")
    parser.add_argument("--docs", type=int, default=30, help="multi-passage documents for the re-ingest test")
    args = parser.parse_args()

    from assistant.assistant import Assistant
    from assistant.config import Settings
    from assistant.models.embedders import minilm
    from assistant.types import Document
    from eval.datasets import load_dataset
    from ingestion.docstore import DocStore
    from ingestion.pipeline import Ingestor

    corpus = load_dataset(args.data).corpus
    texts = [r.text for r in corpus[: args.texts]]
    embedder, bf16 = minilm(dtype="float32"), minilm(dtype="bfloat16")
    embedder.embed(["warm up"])
    bf16.embed(["warm up"])

    print(f"| variant | texts/s ({len(texts)} passages) | vs batch 1 |\n|---|---|---|")
    rows = {}
    for name, batch, sort in (("float32, batch 1", 1, False), ("float32, batch 32, given order", 32, False),
                              ("float32, batch 32, length-sorted", 32, True)):
        embedder.batch_size, embedder.sort_by_length = batch, sort
        rows[name] = rate(embedder, texts, repeats=1 if batch == 1 else 2)
    rows["bfloat16, batch 32, length-sorted (default on native-bf16 CPUs)"] = rate(bf16, texts)
    embedder = bf16
    for name, value in rows.items():
        print(f"| {name} | {value:.1f} | {value / rows['float32, batch 1']:.2f}× |")

    # Re-ingesting edited multi-passage documents, with and without the cache.
    groups = [corpus[i : i + 20] for i in range(0, 20 * args.docs, 20)]
    docs = [Document(f"d{i}", f"doc{i}", f"Document {i}", "\n\n".join(r.text for r in g), {}) for i, g in enumerate(groups)]
    edited = [Document(d.id, d.source, d.title, d.text.replace(". ", ". Indeed, ", 1), {}) for d in docs]
    print(f"\n| re-ingest {len(docs)} edited documents | seconds | passages embedded |\n|---|---|---|")
    for cached in (False, True):
        with tempfile.TemporaryDirectory() as home:
            settings = Settings(home=home, ingestion={"propositions": "off"}, models={"embedding_cache": cached})
            a = Assistant(settings, embedder=embedder)
            with DocStore(settings.docstore_path) as docstore:
                ingestor = Ingestor(settings, embedder, a.store, docstore)
                ingestor.index_documents([(d, "v1") for d in docs])
                before = getattr(ingestor.embedder, "misses", None)
                began = time.perf_counter()
                passages, _ = ingestor.index_documents([(d, "v2") for d in edited])
                seconds = time.perf_counter() - began
                embedded = passages if before is None else ingestor.embedder.misses - before  # type: ignore[attr-defined]
            a.close()
        print(f"| {'with' if cached else 'without'} the embedding cache | {seconds:.2f} | {embedded} of {passages} |")

    # The first query of a process, cold and after warm_up().
    questions = [r.text.split(".")[0] for r in corpus[:20]]
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home, ingestion={"propositions": "off"})
        with DocStore(settings.docstore_path) as docstore:
            a = Assistant(settings)
            Ingestor(settings, a.embedder, a.store, docstore).index_documents([(d, "v1") for d in docs[:5]])
            a.close()
        print("\n| first query of a process | ms |\n|---|---|")
        for warm in (False, True):
            a = Assistant(settings)
            began = time.perf_counter()
            if warm:
                a.warm_up()
            warmed = time.perf_counter() - began
            first = time.perf_counter()
            a.search(questions[0])
            first_ms = 1000 * (time.perf_counter() - first)
            later = []
            for q in questions[1:]:
                t = time.perf_counter()
                a.search(q)
                later.append(1000 * (time.perf_counter() - t))
            a.close()
            label = (f"after warm_up() ({warmed:.1f} s, off the user's path)" if warm
                     else "cold: a new Assistant (loads the embedder; libraries imported, files in the page cache)")
            print(f"| {label} | {first_ms:.0f} |")
        print(f"| later queries, p50 | {statistics.median(later):.0f} |")


if __name__ == "__main__":
    main()
