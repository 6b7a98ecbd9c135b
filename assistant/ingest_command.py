"""What `tessera ingest` and `tessera forget` do with an index: open it (the home's lock first), say how long
a large ingest will take, and run the local or the Ray engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from assistant.command_line import fail
from assistant.config import Settings

# Below this much text to index an ingest takes about a minute or less: the progress bar says the rest.
ESTIMATE_FROM_BYTES = 1e6


@contextmanager
def open_ingestor(settings: Settings) -> Iterator[Any]:
    """An `Ingestor` over the settings' store and docstore, closed afterwards; store errors exit 2."""
    from assistant.models.registry import create_embedder
    from ingestion.docstore import DocStore
    from ingestion.pipeline import Ingestor
    from ingestion.propositions import build_extractor
    from retrievers.store import StoreError, open_store

    try:
        with open_store(settings) as store:
            embedder = create_embedder(settings)
            store.ensure(embedder.dimension)  # the home's lock first: a busy home fails before any work or write
            with DocStore(settings.docstore_path) as docstore:
                yield Ingestor(settings, embedder, store, docstore, build_extractor(settings))
    except StoreError as exc:
        fail(str(exc))


def say_estimate(ingestor: Any, paths: list[Path], settings: Settings, min_text_bytes: float | None = None) -> None:
    """Says how long a large ingest will take before it starts (what needs indexing, at this machine's rate)."""
    from ingestion.estimate import estimate, text_bytes
    from ingestion.loaders import iter_files

    todo = ingestor.pending(list(iter_files(paths)))
    if text_bytes(todo) < (ESTIMATE_FROM_BYTES if min_text_bytes is None else min_text_bytes):
        return
    embedder = getattr(ingestor.embedder, "inner", ingestor.embedder)  # the model itself, not its cache
    typer.echo(estimate(todo, embedder, settings).describe(settings, embedder.name), err=True)


def run_ingest(
    settings: Settings,
    paths: list[Path],
    *,
    engine: str = "local",
    workers: int = 2,
    ray_address: str | None = None,
    prune: bool = False,
    progress: bool = True,
    estimate: bool = True,
    on_error: Any = None,
) -> Any:
    """Ingests ``paths`` with the local engine or Ray; returns the `IngestReport`."""
    with open_ingestor(settings) as ingestor:
        if engine == "ray":
            from ingestion.ray_engine import RayUnavailable, ingest_with_ray

            try:
                report = ingest_with_ray(ingestor, paths, workers=workers, address=ray_address, progress=progress, on_error=on_error)
            except RayUnavailable as exc:
                fail(str(exc))
            if prune:
                report.pruned = ingestor.prune()
            return report
        if estimate:
            say_estimate(ingestor, paths, settings)
        return ingestor.ingest_paths(paths, progress=progress, on_error=on_error, prune=prune)
