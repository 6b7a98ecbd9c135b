"""`tessera ingest --engine ray`: the same ingestion, its parsing and embedding spread over a Ray cluster.

Ray Data reads the list of files that need indexing, parses and splits them in tasks (`Preparer`, as the local
parse thread does; propositions too, with whatever generator the settings name: the local model in each
task's process, or an OpenAI-compatible endpoint such as vLLM), embeds each document's units in a pool of
actors (each loads the embedder once) and streams the results back to this process, which writes them with
`Ingestor.write_embedded`: the same pending-then-publish write and the same docstore rows as a local ingest.
The store is written from here only, so the embedded Qdrant shard keeps its one owner; with a Qdrant server
the workers could write too, but one writer keeps the crash-safety argument the local path has.

Which files need indexing (new, changed, other settings) is decided here from the docstore before anything is
sent, so an unchanged folder costs a hash per file, as locally.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from assistant.config import Settings
from ingestion.loaders import iter_files
from ingestion.pipeline import ErrorHook, IngestReport, Ingestor, Preparer, _Prepared


class RayUnavailable(ValueError):
    """Ray is not installed; the message says how to install it."""


def ingest_with_ray(
    ingestor: Ingestor,
    paths: Sequence[Path],
    *,
    workers: int = 2,
    address: str | None = None,
    progress: bool = True,
    on_error: ErrorHook | None = None,
) -> IngestReport:
    """Ingests files and folders with Ray; the report is a local ingest's.

    Args:
        ingestor: The local ingestor: its settings, store and docstore receive the results.
        paths: Files and folders (searched recursively).
        workers: Embedding actors (each loads the embedder once; on a local cluster, one CPU each).
        address: A running Ray cluster (``ray://host:10001`` or ``auto``); None starts a local one.
        progress: Show a progress bar of the documents written.
        on_error: Called with ``(path, reason)`` for each file skipped.
    """
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayUnavailable("--engine ray needs Ray: pip install 'ray[data]==2.60.0' (scripts/setup.sh installs it)") from exc
    began = time.perf_counter()
    report = IngestReport()
    files = list(iter_files(paths))
    todo = ingestor.pending(files)
    report.unchanged = sorted({os.path.realpath(f) for f in files} - {os.path.realpath(f) for f in todo})
    if todo:
        started_here = not ray.is_initialized()
        if started_here:
            # One logical CPU more than the actors take, so parsing tasks run beside a full pool.
            ray.init(address=address, num_cpus=None if address else workers + 1, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        try:
            _run(ingestor, todo, workers, address is None, report, progress, on_error)
        finally:
            if started_here:
                ray.shutdown()
    if report.ingested:
        ingestor.store.optimize()
    report.seconds = time.perf_counter() - began
    report.stage_seconds = {k: round(v, 3) for k, v in ingestor.clock.seconds.items()}
    return report


def _run(
    ingestor: Ingestor, todo: list[Path], workers: int, local: bool, report: IngestReport, progress: bool,
    on_error: ErrorHook | None,
) -> None:
    import ray.data

    settings = ingestor.settings
    if local:  # the actors share this machine's cores instead of each taking all of them
        threads = max(1, (os.cpu_count() or 1) // workers)
        settings = settings.model_copy(update={"models": settings.models.model_copy(update={"threads": threads})})
    config = settings.model_dump_json()
    files = ray.data.from_items([{"path": str(p)} for p in todo], override_num_blocks=max(1, min(len(todo), 4 * workers)))
    parsed = files.map(_parse, fn_kwargs={"config": config, "recipe": ingestor.recipe}, num_cpus=0.5)
    embedded = parsed.map_batches(
        _Embed, fn_constructor_kwargs={"config": config}, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    bar = tqdm(total=len(todo), desc="ingest (ray)", unit="file", disable=not progress, leave=False)
    with ingestor.clock.measure("ray (parse, embed, write)"):
        for row in embedded.iter_rows():
            bar.update(1)
            prepared: _Prepared = pickle.loads(row["prepared"])
            if prepared.error is not None:
                report.failed.append((prepared.source, prepared.error))
                if on_error is not None:
                    on_error(prepared.source, prepared.error)
                continue
            units = ingestor.units_of(prepared)
            vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(len(units), -1) if units else np.zeros((0, 0))
            ingestor.write_embedded([prepared], [(units, vectors)])
            report.ingested.append(prepared.source)
            report.passages += len(prepared.passages)
            report.propositions += len(prepared.propositions)
    bar.close()


@lru_cache(maxsize=2)
def _preparer(config: str, recipe: str) -> Preparer:
    """One preparer per worker process (Ray reuses them), with the embedder's tokenizer for sizing passages."""
    from assistant.models.registry import create_embedder
    from ingestion.propositions import build_extractor

    settings = Settings.model_validate_json(config)
    embedder = create_embedder(settings)
    return Preparer(settings, getattr(embedder, "count_tokens", None), build_extractor(settings), recipe)


def _parse(row: dict[str, Any], config: str, recipe: str) -> dict[str, Any]:
    """A Ray task: one file read, parsed, split (and its propositions written)."""
    prepared = _preparer(config, recipe).prepare(Path(row["path"]))
    return {"prepared": pickle.dumps(prepared)}


class _Embed:
    """A Ray actor: embeds the units of the documents it is given (the embedder is loaded once per actor)."""

    def __init__(self, config: str) -> None:
        from assistant.models.registry import create_embedder

        self.settings = Settings.model_validate_json(config)
        self.embedder = create_embedder(self.settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from ingestion.pipeline import units_of

        vectors = []
        for blob in batch["prepared"]:
            prepared: _Prepared = pickle.loads(blob)
            texts = [text for _, text, _ in units_of(prepared, self.settings)]
            vectors.append(np.asarray(self.embedder.embed(texts), dtype=np.float32).tobytes() if texts else b"")
        return {"prepared": list(batch["prepared"]), "vectors": vectors}
