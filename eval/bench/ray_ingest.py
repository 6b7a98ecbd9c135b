"""`tessera ingest --engine ray` against the local engine: documents/s with 1 and 2 embedding actors on a local
Ray cluster, and whether the indexes answer alike (the top 10 of questions about the documents).

Long documents: a SQuAD JSON file's articles written out as Markdown files (about 5,000 words each). Each
engine ingests them into a fresh home with the default settings, Ray's start and shutdown included in its time
(whole-run documents/s is what a user waits for). Run:
``python -m eval.bench.ray_ingest ../shared/data/dev/squad/dev-v1.1.rebuilt.json --docs 12``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def write_articles(squad: Path, limit: int, folder: Path) -> list[str]:
    """The first ``limit`` articles as Markdown files; returns three questions per article."""
    questions = []
    for i, article in enumerate(json.loads(squad.read_text())["data"][:limit]):
        paragraphs = article["paragraphs"]
        text = "\n\n".join(p["context"] for p in paragraphs)
        (folder / f"{i:03d}.md").write_text(f"# {article['title'].replace('_', ' ')}\n\n{text}")
        questions += [qa["question"] for p in paragraphs[:3] for qa in p["qas"][:1]]
    return questions


def run(engine: str, workers: int, folder: Path, questions: list[str]) -> dict[str, Any]:
    from assistant.config import Settings
    from assistant.models.registry import create_embedder
    from ingestion.docstore import DocStore
    from ingestion.pipeline import Ingestor
    from ingestion.propositions import build_extractor
    from ingestion.ray_engine import ingest_with_ray
    from retrievers.hybrid import HybridRetriever
    from retrievers.store import open_store

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=home, models={"cache_dir": Settings().model_cache})
        with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
            embedder = create_embedder(settings)
            embedder.embed(["warm up"] * 8)  # the local engine's model load is not ingestion (Ray's actors pay theirs)
            ingestor = Ingestor(settings, embedder, store, docstore, build_extractor(settings))
            began = time.perf_counter()
            if engine == "ray":
                report = ingest_with_ray(ingestor, [folder], workers=workers, progress=False)
            else:
                report = ingestor.ingest_paths([folder], progress=False)
            seconds = time.perf_counter() - began
            retriever = HybridRetriever(store, embedder, settings.retrieval)
            tops = [[h.unit_id for h in retriever.retrieve(q, top_k=10)] for q in questions]
    return {"engine": engine if engine == "local" else f"ray, {workers} actor(s)", "docs": len(report.ingested),
            "passages": report.passages, "seconds": seconds, "tops": tops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("squad", type=Path, help="a SQuAD JSON file (its articles become long documents)")
    parser.add_argument("--docs", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        questions = write_articles(args.squad, args.docs, folder)
        rows = [run("local", 0, folder, questions), run("ray", 1, folder, questions), run("ray", 2, folder, questions)]
    local = rows[0]
    print("| engine | documents | passages | seconds | documents/s | questions with the local top 10 (same order) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        same = sum(a == b for a, b in zip(r["tops"], local["tops"]))
        print(f"| {r['engine']} | {r['docs']} | {r['passages']} | {r['seconds']:.1f} | {r['docs'] / r['seconds']:.3f} | "
              f"{same} of {len(questions)} |")


if __name__ == "__main__":
    main()
