"""`tessera ingest --engine ray` on a local Ray cluster: the index it builds answers as the local ingest's."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.models.registry import create_embedder
from ingestion.docstore import DocStore
from ingestion.pipeline import Ingestor
from ingestion.propositions import build_extractor
from ingestion.ray_engine import ingest_with_ray
from retrievers.hybrid import HybridRetriever
from retrievers.store import open_store

pytestmark = pytest.mark.slow  # a local Ray cluster takes seconds to start

QUESTIONS = ["Where is Lake Baikal?", "How tall is the Eiffel Tower?", "Who painted the ceiling?", "deepest lake"]


def corpus(folder: Path) -> Path:
    folder.mkdir()
    facts = " ".join(f"Lake number {i} lies {i * 7} kilometres north of station {i * 3}." for i in range(40))
    (folder / "lakes.md").write_text(f"# Lakes\nLake Baikal is in Siberia, the deepest lake in the world. {facts}")
    (folder / "towers.md").write_text("# Towers\nThe Eiffel Tower is in Paris and is 330 metres tall.\n")
    (folder / "art").mkdir()
    (folder / "art" / "chapel.md").write_text("# Chapel\nMichelangelo painted the ceiling of the Sistine Chapel.\n")
    (folder / "broken.pdf").write_bytes(b"not a pdf")
    return folder


def ingest(home: Path, folder: Path, engine: str) -> tuple[object, list, list]:
    settings = Settings(home=home, models={"embedder": "fake"}, ingestion={"chunk_size": 48, "propositions": "rules"})
    with open_store(settings) as store, DocStore(settings.docstore_path) as docstore:
        ingestor = Ingestor(settings, create_embedder(settings), store, docstore, build_extractor(settings))
        if engine == "ray":
            report = ingest_with_ray(ingestor, [folder], workers=2, progress=False)
        else:
            report = ingestor.ingest_paths([folder], progress=False)
        retriever = HybridRetriever(store, ingestor.embedder, settings.retrieval)
        # Every unit, each with its score (ties between near-identical fake vectors may come in any order).
        hits = [sorted((-round(h.score, 5), h.unit_id) for h in retriever.retrieve(q, top_k=200)) for q in QUESTIONS]
        rows = [(d.source, d.content_hash, d.passages, d.propositions) for d in docstore.documents()]
    return report, hits, rows


def test_ray_builds_the_index_the_local_ingest_builds(tmp_path: Path) -> None:
    folder = corpus(tmp_path / "docs")
    local, local_hits, local_rows = ingest(tmp_path / "local", folder, "local")
    ray, ray_hits, ray_rows = ingest(tmp_path / "ray", folder, "ray")
    assert sorted(ray.ingested) == sorted(local.ingested) and len(ray.ingested) == 3
    assert ray.passages == local.passages and ray.propositions == local.propositions > 0
    assert [source for source, _ in ray.failed] == [str(folder / "broken.pdf")]
    assert ray_rows == local_rows  # the same docstore records, hashes included
    assert ray_hits == local_hits and all(ray_hits)  # the same hits with the same scores
    again, _, _ = ingest(tmp_path / "ray", folder, "ray")
    assert again.ingested == [] and len(again.unchanged) == 3  # decided here, before anything is sent to Ray
    assert [source for source, _ in again.failed] == [str(folder / "broken.pdf")]  # tried again, as locally


def test_tessera_ingest_engine_ray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("TESSERA_MODELS__EMBEDDER", "fake")
    folder = corpus(tmp_path / "docs")
    result = CliRunner().invoke(app, ["ingest", str(folder), "--engine", "ray", "--workers", "1", "--home", str(tmp_path / "h")])
    assert result.exit_code == 0, result.output
    assert "ingested 3 file(s)" in result.output and "1 skipped" in result.output


def test_eval_run_engine_ray_answers_as_the_local_run(settings: Settings, tmp_path: Path) -> None:
    import json

    from eval.runner import EvalRunner, RunConfig
    from tests.test_runner import tiny_dataset

    data = tiny_dataset(tmp_path / "data")
    models = settings.models.model_copy(update={"embedder": "fake", "generator": "fake"})
    settings = settings.model_copy(update={"models": models, "eval": settings.eval.model_copy(update={"judge": None})})
    EvalRunner(settings, RunConfig(data, tmp_path / "local", progress=False)).run()
    EvalRunner(settings, RunConfig(data, tmp_path / "ray", progress=False, engine="ray", workers=2)).run()

    def rows(run: str) -> dict[str, tuple]:
        found = [json.loads(line) for line in (tmp_path / run / "answers.jsonl").read_text().splitlines()]
        return {r["id"]: (r["answer"], r["abstained"], r["retrieved_ids"], r["metrics"]) for r in found}

    assert rows("ray") == rows("local") and len(rows("ray")) == 3
    assert not (tmp_path / "ray" / ".ray-actors").exists()  # the actors' copies of the index are gone
