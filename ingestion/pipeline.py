"""Ingestion: files → documents → passages + propositions → dense + BM25 vectors in Qdrant, records in
the docstore.

Crash safety: a document's points are written as ``pending``, made searchable in one step
(`Store.publish`) once all are written, and only then recorded in the docstore. A kill at any point
leaves nothing half-indexed searchable, and the next run (which finds no docstore record, or an old
hash) deletes the leftovers and redoes the document.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from assistant.config import Settings
from assistant.models.base import Embedder
from assistant.models.embedding_cache import CachedEmbedder
from assistant.types import Document, Passage, Proposition, StageClock
from ingestion.docstore import DocStore
from ingestion.metadata import describe
from ingestion.loaders import LoaderError, check_file, iter_files, load_document, supported_extensions
from ingestion.propositions import PropositionExtractor
from ingestion.splitter import PassageSplitter
from retrievers.store import PENDING, Store, StorePoint

T = TypeVar("T")
R = TypeVar("R")
ErrorHook = Callable[[str, str], None]
Unit = tuple[str, str, dict[str, Any]]  # unit id, the text embedded, the payload stored


@dataclass
class IngestReport:
    """What one ingest run did."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    passages: int = 0
    propositions: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (parse, split, propositions, embed, bm25, qdrant write, publish, docstore); parsing
    and splitting run in a thread beside embedding, so the stages can sum to more than ``seconds``."""

    @property
    def ok(self) -> bool:
        """False only when files were given and none could be read (the CLI's non-zero exit)."""
        return bool(self.ingested or self.unchanged) or not self.failed

    @property
    def units_per_second(self) -> float:
        """Passages plus propositions indexed per second of the run."""
        return (self.passages + self.propositions) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class _Prepared:
    """A document parsed and split, ready to embed (or the reason it can't be)."""

    source: str
    digest: str = ""
    document: Document | None = None
    passages: tuple[Passage, ...] = ()
    propositions: tuple[Proposition, ...] = ()
    unchanged: bool = False
    error: str | None = None


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_recipe(settings: Settings, embedder_name: str) -> str:
    """What decides a file's units and vectors besides its bytes. It is part of the hash the docstore keeps,
    so changing one of these settings (the chunk size, propositions on or off, the embedder) re-indexes a
    file on the next ingest instead of skipping it as unchanged."""
    i = settings.ingestion
    parts = [embedder_name, i.chunk_size, i.chunk_overlap, i.propositions, i.proposition_header, i.metadata_header]
    if i.propositions == "llm":
        parts.append(settings.models.generator)  # the model that writes them
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12]


def _ahead(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], depth: int = 2) -> Iterator[R]:
    """``map`` that keeps at most ``depth`` calls running ahead of the consumer (bounded memory)."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class Preparer:
    """Everything before embedding: read and parse a file, split it into passages, write propositions. The
    local ingest runs it in a parse thread beside embedding; `ingestion.ray_engine` runs it in Ray tasks.

    Args:
        settings: Chunking, propositions, file limits.
        count_tokens: The embedder's tokenizer (passages are sized in its tokens).
        extractor: Writes propositions; None indexes passages only.
        recipe: `index_recipe` of the settings and embedder (part of every document's recorded hash).
        clock: Where the stages' seconds are added up.
    """

    def __init__(
        self,
        settings: Settings,
        count_tokens: Callable[[str], int] | None,
        extractor: PropositionExtractor | None,
        recipe: str,
        clock: StageClock | None = None,
    ) -> None:
        self.settings, self.extractor, self.recipe = settings, extractor, recipe
        self.clock = clock or StageClock()
        self.splitter = PassageSplitter(settings.ingestion.chunk_size, settings.ingestion.chunk_overlap, count_tokens=count_tokens)

    def prepare(self, path: Path, known: Callable[[str], str | None] = lambda source: None) -> _Prepared:
        """Everything before embedding, for one file; ``known`` gives the docstore's hash of a source (a file
        whose bytes and index recipe match it is returned as unchanged, unparsed)."""
        source = os.path.realpath(path)  # Path.resolve() raises on a symlink loop; realpath returns a path
        if not os.path.lexists(path):
            return _Prepared(source, error="no such file or folder")
        if path.suffix.lower() not in supported_extensions():
            exts = ", ".join(sorted(supported_extensions()))
            return _Prepared(source, error=f"unsupported file type (Tessera reads {exts})")
        limits = self.settings.ingestion
        max_bytes = int(limits.max_file_mb * 1024 * 1024)
        try:
            with self.clock.measure("parse"):
                check_file(path, max_bytes=max_bytes)  # before hashing: a FIFO would block, a huge file be read
                content = file_hash(path)
                digest = f"{content}+{self.recipe}"
                # A bare content hash was stored before the recipe was: such a file counts as unchanged.
                if known(source) in (digest, content):
                    return _Prepared(source, digest, unchanged=True)
                document = load_document(
                    path,
                    max_bytes=max_bytes,
                    max_unpacked_mb=limits.max_unpacked_mb,
                    parse_timeout_s=limits.parse_timeout_s,
                    parse_memory_mb=limits.parse_memory_mb,
                )
        except LoaderError as exc:
            return _Prepared(source, error=str(exc).removeprefix(f"{path}: ").removeprefix(f"{source}: "))
        except OSError as exc:
            return _Prepared(source, error=exc.strerror or str(exc))
        passages, propositions = self.split(document)
        return _Prepared(source, digest, document, tuple(passages), tuple(propositions))

    def split(self, document: Document) -> tuple[list[Passage], list[Proposition]]:
        with self.clock.measure("split"):
            passages = self.splitter.split(document)
        if self.extractor is None or not passages:
            return passages, []
        with self.clock.measure("propositions"):
            spans = self.extractor.extract_many([(p, document) for p in passages])
        propositions = [
            Proposition(f"{p.id}:p{i}", p.id, document.id, span.text, span.start, span.end)
            for p, found in zip(passages, spans)
            for i, span in enumerate(found)
        ]
        return passages, propositions



class Ingestor:
    """Indexes files or ready-made documents.

    Args:
        settings: Chunking, batch size and file size limit come from here.
        embedder: Embeds units (the same one must embed queries).
        store: Receives one point per passage and per proposition.
        docstore: Records documents, passages, propositions and content hashes.
        extractor: Decomposes passages into propositions; None indexes passages only.
    """

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: Store,
        docstore: DocStore,
        extractor: PropositionExtractor | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.docstore = docstore
        self.extractor = extractor
        count = getattr(embedder, "count_tokens", None)
        if settings.models.embedding_cache and not isinstance(embedder, CachedEmbedder):
            embedder = CachedEmbedder(embedder, settings.embedding_cache_path)
        self.embedder = embedder
        self.clock = StageClock()  # the profile of everything this ingestor did (IngestReport.stage_seconds)
        self.recipe = index_recipe(settings, embedder.name)
        store.bind_embedder(embedder.name)
        self.preparer = Preparer(settings, count, extractor, self.recipe, self.clock)

    def _prepare(self, path: Path) -> _Prepared:
        return self.preparer.prepare(path, self.docstore.content_hash)

    def _split(self, document: Document) -> tuple[list[Passage], list[Proposition]]:
        return self.preparer.split(document)

    def ingest_paths(
        self,
        paths: Sequence[Path],
        *,
        progress: bool = True,
        on_error: ErrorHook | None = None,
        prune: bool = False,
    ) -> IngestReport:
        """Ingests files and folders; a file that cannot be read is reported and skipped.

        Parsing and splitting of the next file run in a worker thread while the current one is embedded.

        Args:
            paths: Files and folders (searched recursively).
            progress: Show a progress bar on stderr.
            on_error: Called with ``(path, reason)`` for each file skipped, as it happens.
            prune: Also remove indexed documents whose files no longer exist.
        """
        began = time.perf_counter()
        report = IngestReport()
        files = list(iter_files(paths))
        sizes = {os.path.realpath(f): _size(f) for f in files}
        # By bytes, not files: one long file among short ones would make a count of files a poor clock.
        bar = tqdm(total=sum(sizes.values()), desc="ingest", unit="B", unit_scale=True, disable=not progress, leave=False)
        buffer: list[_Prepared] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse") as pool:
            for prepared in _ahead(pool, self._prepare, files):
                bar.update(sizes.get(prepared.source, 0))
                if prepared.error is not None:
                    report.failed.append((prepared.source, prepared.error))
                    if on_error is not None:
                        on_error(prepared.source, prepared.error)
                    continue
                if prepared.unchanged:
                    report.unchanged.append(prepared.source)
                    continue
                buffer.append(prepared)
                report.ingested.append(prepared.source)
                report.passages += len(prepared.passages)
                report.propositions += len(prepared.propositions)
                if _units(buffer) >= self.settings.ingestion.batch_size:
                    self._write(buffer)
                    buffer = []
                elapsed = time.perf_counter() - began
                units = report.passages + report.propositions
                bar.set_postfix(files=f"{len(report.ingested) + len(report.unchanged)}/{len(files)}", units=units,
                                units_s=f"{units / elapsed:.1f}")
            self._write(buffer)
        bar.close()
        if report.ingested:
            with self.clock.measure("publish"):
                self.store.optimize()  # builds HNSW where needed (see index_documents)
        if prune:
            report.pruned = self.prune()
        report.seconds = time.perf_counter() - began
        report.stage_seconds = {k: round(v, 3) for k, v in self.clock.seconds.items()}
        return report

    def index_documents(
        self, items: Iterable[tuple[Document, str]], *, progress: bool = False
    ) -> tuple[int, int]:
        """Splits, extracts, embeds and stores ready-made documents, replacing earlier versions.

        Args:
            items: ``(document, content_hash)`` pairs; units of several documents share embedding batches.
            progress: Show a progress bar.

        Returns:
            ``(passages, propositions)`` written.
        """
        def prepare(item: tuple[Document, str]) -> _Prepared:
            document, digest = item
            passages, propositions = self._split(document)
            return _Prepared(document.source, digest, document, tuple(passages), tuple(propositions))

        counts = [0, 0]
        buffer: list[_Prepared] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse") as pool:
            for prepared in tqdm(_ahead(pool, prepare, items), desc="index", unit="doc", disable=not progress):
                buffer.append(prepared)
                counts[0] += len(prepared.passages)
                counts[1] += len(prepared.propositions)
                if _units(buffer) >= self.settings.ingestion.batch_size:
                    self._write(buffer)
                    buffer = []
            self._write(buffer)
        # Qdrant Edge builds HNSW only when asked: at 100k units that takes hybrid queries from 12.8 to
        # 3.8 ms (docs/BENCHMARKS.md). Edge indexes only segments that need it, so this is free when nothing does.
        with self.clock.measure("publish"):
            self.store.optimize()
        return counts[0], counts[1]

    def index_document(self, document: Document, content_hash: str) -> tuple[int, int]:
        """`index_documents` for one document."""
        return self.index_documents([(document, content_hash)])

    def forget(self, source: str) -> bool:
        """Deletes the document ingested from ``source`` (its vectors and records); False if unknown."""
        record = self.docstore.find(source)
        if record is None:
            return False
        self.store.delete_doc(record.id)
        self.docstore.delete(record.id)
        return True

    def pending(self, files: Sequence[Path]) -> list[Path]:
        """The files an ingest would (re)index: new, changed, or indexed with other settings (hashes them)."""
        todo = []
        for path in files:
            try:
                content = file_hash(path)
            except OSError:
                continue
            if self.docstore.content_hash(os.path.realpath(path)) not in (f"{content}+{self.recipe}", content):
                todo.append(path)
        return todo

    def prune(self) -> list[str]:
        """Deletes every indexed file-backed document whose file is gone; returns their sources."""
        gone = [r.source for r in self.docstore.documents() if r.source.startswith("/") and not Path(r.source).exists()]
        for source in gone:
            self.forget(source)
        return gone

    # -- steps -----------------------------------------------------------------------------------

    def _write(self, batch: Sequence[_Prepared]) -> None:
        """Embeds the documents' units chunk by chunk and stores them (`write_embedded`).

        Units of several small documents share embedding batches (one SQuAD paragraph is one passage:
        embedding per document would run the model on batches of one or two).
        """
        units = [unit for item in batch for unit in self.units_of(item)]
        size = self.settings.ingestion.batch_size

        def embedded() -> Iterator[tuple[list[Unit], Any]]:
            for start in range(0, len(units), size):
                chunk = units[start : start + size]
                with self.clock.measure("embed"):
                    yield chunk, self.embedder.embed([text for _, text, _ in chunk])

        self.write_embedded(batch, embedded())

    def units_of(self, item: _Prepared) -> list[Unit]:
        """``(unit id, text to embed, payload)`` of every passage and proposition of a prepared document."""
        return units_of(item, self.settings)

    def write_embedded(self, batch: Sequence[_Prepared], chunks: Iterable[tuple[list[Unit], Any]]) -> None:
        """The crash-safe write every engine shares: the documents' earlier points deleted, the new ones
        written ``pending`` chunk by chunk as ``chunks`` yields them (units with their vectors), then published
        in one step and only then recorded in the docstore."""
        if not batch:
            return
        self.store.ensure(self.embedder.dimension)
        documents = [item.document for item in batch if item.document is not None]
        doc_ids = [d.id for d in documents]
        with self.clock.measure("publish"):
            self.store.delete_docs(doc_ids)  # earlier versions, or pending leftovers of a killed run
        for chunk, vectors in chunks:
            points = [StorePoint(uid, vec, text, payload) for (uid, text, payload), vec in zip(chunk, vectors)]
            self.store.upsert(points, self.clock)
        with self.clock.measure("publish"):
            self.store.publish(doc_ids)
        with self.clock.measure("docstore"):
            self.docstore.put_many([(d, item.digest, item.passages, item.propositions) for item, d in zip(batch, documents)])


def units_of(item: _Prepared, settings: Settings) -> list[Unit]:
    """``(unit id, text to embed, payload)`` of every passage and proposition of a prepared document."""
    if item.document is None:
        return []
    i = settings.ingestion
    return _units_of(item.document, item.passages, item.propositions, i.proposition_header, i.metadata_header)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _units(batch: Sequence[_Prepared]) -> int:
    return sum(len(item.passages) + len(item.propositions) for item in batch)


def _units_of(
    document: Document,
    passages: Sequence[Passage],
    propositions: Sequence[Proposition],
    proposition_header: bool = False,
    metadata_header: bool = False,
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(unit id, text to index, payload)`` for every passage and proposition of a document; propositions
    get the title/heading header too with ``proposition_header``, every unit the document's site, author and
    date with ``metadata_header``."""
    described = describe(document.metadata)
    about = _about(described) if metadata_header else ""
    by_id = {p.id: p for p in passages}
    units = [
        (p.id, _embedding_text(document, p.text, p.heading, about), _payload(document, described, p, "passage", p.text))
        for p in passages
    ]
    for q in propositions:
        passage = by_id[q.passage_id]
        text = _embedding_text(document, q.text, passage.heading, about) if proposition_header else q.text
        units.append((q.id, text, _payload(document, described, passage, "proposition", q.text, q)))
    return units


def _embedding_text(document: Document, text: str, heading: str | None, about: str = "") -> str:
    """The text a passage is indexed by: its words plus the document title and heading for context, and with
    ``about`` a line naming the document's site, author and date (document-aware passage retrieval)."""
    context = " — ".join(x for x in (document.title, heading) if x and x not in text[:200])
    header = "\n".join(x for x in (context, about) if x)
    return f"{header}\n{text}" if header else text


def _about(described: dict[str, str]) -> str:
    """"The Verge, by Jane Doe, October 5, 2023": the words a question uses for a source and a date."""
    parts = [described.get("site", "")]
    if author := described.get("author"):
        parts.append(f"by {author}")
    if date := described.get("date"):
        moment = dt.datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ")
        parts.append(f"{moment:%B} {moment.day}, {moment.year}")
    return ", ".join(p for p in parts if p)


def _payload(
    document: Document,
    described: dict[str, str],
    passage: Passage,
    unit: str,
    text: str,
    proposition: Proposition | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        **described,  # author, site, date, modified, file_name: filterable (keyword and datetime indexes)
        "unit_id": proposition.id if proposition else passage.id,
        "unit": unit,
        "state": PENDING,
        "passage_id": passage.id,
        "doc_id": document.id,
        "text": text,
        "source": document.source,
        "title": document.title,
        "page": passage.page,
        "heading": passage.heading,
        "start": proposition.start if proposition else passage.start,
        "end": proposition.end if proposition else passage.end,
    }
    if proposition is not None:
        payload["passage_text"] = passage.text
    return payload
