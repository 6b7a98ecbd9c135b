"""Ingestion: files → documents → passages → dense + BM25 vectors in Qdrant, records in the docstore."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from assistant.config import Settings
from assistant.models.base import Embedder
from assistant.types import Document, Passage
from ingestion.docstore import DocStore
from ingestion.loaders import LoaderError, iter_files, load_document, supported_extensions
from ingestion.splitter import PassageSplitter
from retrievers.store import Store, StorePoint


@dataclass
class IngestReport:
    """What one ingest run did."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    passages: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """False only when files were given and none could be read (the CLI's non-zero exit)."""
        return bool(self.ingested or self.unchanged) or not self.failed


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Ingestor:
    """Indexes files or ready-made documents.

    Args:
        settings: Chunking, batch size and file size limit come from here.
        embedder: Embeds passages (the same one must embed queries).
        store: Receives one point per passage.
        docstore: Records documents, passages and content hashes.
    """

    def __init__(self, settings: Settings, embedder: Embedder, store: Store, docstore: DocStore) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.docstore = docstore
        count = getattr(embedder, "count_tokens", None)
        self.splitter = PassageSplitter(
            settings.ingestion.chunk_size, settings.ingestion.chunk_overlap, count_tokens=count
        )

    def ingest_paths(
        self, paths: Sequence[Path], *, progress: bool = True, on_error: Callable[[str, str], None] | None = None
    ) -> IngestReport:
        """Ingests files and folders; a file that cannot be read is reported and skipped.

        Args:
            paths: Files and folders (searched recursively).
            progress: Show a progress bar on stderr.
            on_error: Called with ``(path, reason)`` for each file skipped, as it happens.
        """
        began = time.perf_counter()
        report = IngestReport()
        max_bytes = int(self.settings.ingestion.max_file_mb * 1024 * 1024)
        files = list(iter_files(paths))
        bar = tqdm(files, desc="ingest", unit="file", disable=not progress, leave=False)
        for path in bar:
            bar.set_postfix(passages=report.passages)
            source = str(path.resolve())
            if not path.exists():
                self._fail(report, source, "no such file or folder", on_error)
                continue
            if path.suffix.lower() not in supported_extensions():
                exts = ", ".join(sorted(supported_extensions()))
                self._fail(report, source, f"unsupported file type (Tessera reads {exts})", on_error)
                continue
            try:
                digest = file_hash(path)
                if self.docstore.content_hash(source) == digest:
                    report.unchanged.append(source)
                    continue
                document = load_document(path, max_bytes=max_bytes)
            except LoaderError as exc:
                self._fail(report, source, str(exc).removeprefix(f"{path}: ").removeprefix(f"{source}: "), on_error)
                continue
            except OSError as exc:
                self._fail(report, source, exc.strerror or str(exc), on_error)
                continue
            report.passages += self.index_document(document, digest)
            report.ingested.append(source)
        bar.close()
        report.seconds = time.perf_counter() - began
        return report

    def index_document(self, document: Document, content_hash: str) -> int:
        """Splits, embeds and stores one document, replacing any earlier version; returns its passage count.

        Vectors are written before the docstore row, so a crash in between leaves the document looking
        un-ingested and the next run redoes it (its old points are deleted first).
        """
        passages = self.splitter.split(document)
        self.store.ensure(self.embedder.dimension)
        self.store.delete_doc(document.id)
        batch = self.settings.ingestion.batch_size
        for start in range(0, len(passages), batch):
            chunk = passages[start : start + batch]
            vectors = self.embedder.embed([_embedding_text(document, p) for p in chunk])
            self.store.upsert(
                [StorePoint(p.id, vec, _embedding_text(document, p), _payload(document, p)) for p, vec in zip(chunk, vectors)]
            )
        self.docstore.put(document, content_hash, passages)
        return len(passages)

    @staticmethod
    def _fail(report: IngestReport, source: str, reason: str, on_error: Callable[[str, str], None] | None) -> None:
        report.failed.append((source, reason))
        if on_error is not None:
            on_error(source, reason)


def _embedding_text(document: Document, passage: Passage) -> str:
    """The text a passage is indexed by: its words plus the document title and heading for context."""
    context = " — ".join(x for x in (document.title, passage.heading) if x and x not in passage.text[:200])
    return f"{context}\n{passage.text}" if context else passage.text


def _payload(document: Document, passage: Passage) -> dict:
    return {
        "unit_id": passage.id,
        "passage_id": passage.id,
        "doc_id": document.id,
        "text": passage.text,
        "source": document.source,
        "title": document.title,
        "page": passage.page,
        "heading": passage.heading,
        "start": passage.start,
        "end": passage.end,
    }
