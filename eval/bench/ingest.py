"""Ingestion throughput, side by side in one run: Tessera (propositions off / rules / LLM) and vanilla
llama-index (`VectorStoreIndex.from_documents`, its default splitter), same corpus, same embedder.

Each variant runs in its own subprocess, so peak memory (max RSS) is its own and no model cache is shared.
Run: ``python -m eval.bench.ingest data/squad1 --docs 200 --llm-docs 10`` (a dataset folder from
``tessera eval convert``; ``--docs`` takes its first N corpus documents).
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

VARIANTS = ("tessera-off", "tessera-rules", "tessera-llm", "vanilla")


def _documents(data: Path, limit: int) -> list[Any]:
    from assistant.types import Document
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
        # A fresh home per variant, but the usual model cache: converting the GGUF is not ingestion.
        settings = Settings(home=home, ingestion={"propositions": extractor}, models={"cache_dir": Settings().model_cache})
        embedder = create_embedder(settings)
        embedder.embed(["warm up"])  # model load is not ingestion
        counted = _CountingEmbedder(embedder)
        began = time.perf_counter()
        if variant == "vanilla":
            from eval.vanilla import VanillaPipeline

            pipeline = VanillaPipeline(settings, counted, create_generator(settings, "fake"))
            pipeline.index(documents)
            passages, propositions, stats = counted.texts, 0, {}
        else:
            from ingestion.docstore import DocStore
            from ingestion.pipeline import Ingestor
            from ingestion.propositions import build_extractor
            from retrievers.store import open_store

            with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
                ingestor = Ingestor(settings, counted, store, docstore, build_extractor(settings))
                passages, propositions = ingestor.index_documents([(d, d.id) for d in documents])
                stats = dict(getattr(ingestor.extractor, "stats", {}) or {})
        seconds = time.perf_counter() - began
    return {
        "variant": variant,
        "documents": len(documents),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a dataset folder (tessera eval convert)")
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
            f"{r['docs_s']:.1f} | {r['passages_s']:.1f} | {r['propositions_s']:.1f} | {r['embeddings_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    for r in rows:
        if r["extractor_stats"]:
            print(f"\n{r['variant']} extractor: {r['extractor_stats']}")
    base = next((r for r in rows if r["variant"] == "vanilla"), None)
    off = next((r for r in rows if r["variant"] == "tessera-off"), None)
    if base and off:
        print(f"\nTessera (propositions off) / vanilla documents/s: {off['docs_s'] / base['docs_s']:.2f}")


if __name__ == "__main__":
    main()
