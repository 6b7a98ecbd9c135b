"""Evaluation datasets: one on-disk format, a loader that checks it, and converters from public sets.

A dataset is a folder of three files:

- ``corpus.jsonl``: one document per line, ``{"id", "title", "text", "metadata"}``.
- ``questions.jsonl``: one question per line, ``{"id", "question", "answers": [...], "evidence_ids":
  [...], "conversation_id": str | null, "metadata": {...}}``. Empty ``answers`` means the right
  behaviour is to abstain. ``evidence_ids`` name corpus ids: the documents the question was written
  against (for an unanswerable question, the ones it was written to trick). ``metadata["evidence_texts"]``
  holds the exact supporting spans inside those documents where the source gives them (HotpotQA
  supporting sentences, MuSiQue supporting paragraphs, SQuAD answer spans, LoCoMo evidence turns, the
  positive passages or chunks of RGB and amnesty-qa), so retrieval can be judged at passage level too;
  ``metadata["category"]``/``["type"]`` carry the source's question class where it has one.
- ``dataset.json``: a manifest ``{"name", "format", "source", "limit", "seed", "distractors",
  "questions", "documents", "warnings"}`` (optional for hand-written sets). ``distractors`` is the number
  of non-evidence documents actually kept, so passing it back to ``convert`` rebuilds the same corpus;
  ``warnings`` lists source problems worked around (e.g. LoCoMo's malformed evidence ids).

``eval.converters.convert(fmt, source, limit=, seed=, distractors=)`` reads a source file with the
converter registered under ``fmt`` (`convert_with` here does the rest), samples ``limit`` questions with
``random.Random(seed)`` and keeps every evidence document plus ``distractors`` others: first the
format's *related* documents of the sampled questions (hard negatives: same article, own context
paragraphs, same conversation, own passages), in seeded order, then other documents of the source.
``distractors=None`` picks the format's default (see each converter). Same arguments, same bytes.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CORPUS_FILE, QUESTIONS_FILE, MANIFEST_FILE = "corpus.jsonl", "questions.jsonl", "dataset.json"


class DatasetError(ValueError):
    """A dataset folder or source file that doesn't hold what its format promises."""


@dataclass(frozen=True)
class CorpusRecord:
    """One document of the corpus."""

    id: str
    title: str
    text: str
    metadata: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class QuestionRecord:
    """One question with its gold answers and the corpus ids of its evidence."""

    id: str
    question: str
    answers: tuple[str, ...]
    evidence_ids: tuple[str, ...]
    conversation_id: str | None = None
    metadata: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Lists from JSON become tuples so records stay immutable and compare equal after a round trip.
        object.__setattr__(self, "answers", tuple(self.answers))
        object.__setattr__(self, "evidence_ids", tuple(self.evidence_ids))

    @property
    def answerable(self) -> bool:
        """False when the right behaviour is to abstain (no gold answer)."""
        return bool(self.answers)


@dataclass
class Dataset:
    """A corpus, the questions asked of it, and the manifest saying where they came from."""

    name: str
    corpus: list[CorpusRecord]
    questions: list[QuestionRecord]
    manifest: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- load/save


def save_dataset(dataset: Dataset, folder: Path) -> None:
    """Writes ``dataset`` as ``corpus.jsonl``, ``questions.jsonl`` and ``dataset.json`` in ``folder``.

    Output is deterministic (fixed key order, UTF-8, ``\\n`` endings) so equal datasets give equal bytes.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / CORPUS_FILE).open("w", encoding="utf-8", newline="\n") as out:
        for doc in dataset.corpus:
            out.write(_dumps({"id": doc.id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}))
    with (folder / QUESTIONS_FILE).open("w", encoding="utf-8", newline="\n") as out:
        for q in dataset.questions:
            record = {
                "id": q.id,
                "question": q.question,
                "answers": list(q.answers),
                "evidence_ids": list(q.evidence_ids),
                "conversation_id": q.conversation_id,
                "metadata": q.metadata,
            }
            out.write(_dumps(record))
    manifest = {**dataset.manifest, "name": dataset.name}
    manifest.update(questions=len(dataset.questions), documents=len(dataset.corpus))
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")


def load_dataset(folder: Path) -> Dataset:
    """Reads and checks a dataset folder.

    Raises:
        DatasetError: a file is missing, a line is not a JSON object with the expected fields, an id
            repeats, or a question names an evidence id the corpus lacks. The message names the file
            and line.
    """
    folder = Path(folder)
    for name in (CORPUS_FILE, QUESTIONS_FILE):
        if not (folder / name).is_file():
            raise DatasetError(f"{folder / name} is missing: a dataset folder holds {CORPUS_FILE} and "
                               f"{QUESTIONS_FILE} (write one with save_dataset or `convert`)")
    manifest: dict = {}
    if (folder / MANIFEST_FILE).is_file():
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{folder / MANIFEST_FILE}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(manifest, dict):
            raise DatasetError(f"{folder / MANIFEST_FILE}: expected a JSON object, got {type(manifest).__name__}")

    corpus, doc_lines = [], {}
    for where, obj in _jsonl(folder / CORPUS_FILE):
        _check(obj, where, required={"id": str, "text": str}, optional={"title": str, "metadata": dict})
        _unique(obj["id"], doc_lines, where)
        corpus.append(CorpusRecord(obj["id"], obj.get("title", ""), obj["text"], obj.get("metadata", {})))

    questions, question_lines = [], {}
    for where, obj in _jsonl(folder / QUESTIONS_FILE):
        _check(obj, where, required={"id": str, "question": str, "answers": list},
               optional={"evidence_ids": list, "conversation_id": (str, type(None)), "metadata": dict})
        for key in ("answers", "evidence_ids"):
            if not all(isinstance(v, str) for v in obj.get(key, [])):
                raise DatasetError(f"{where}: '{key}' must be a list of strings, got {obj[key]!r}")
        _unique(obj["id"], question_lines, where)
        missing = [e for e in obj.get("evidence_ids", []) if e not in doc_lines]
        if missing:
            raise DatasetError(f"{where}: evidence id(s) {missing} of question {obj['id']!r} are not in "
                               f"{folder / CORPUS_FILE}; add the documents or fix the ids")
        questions.append(QuestionRecord(obj["id"], obj["question"], obj["answers"], obj.get("evidence_ids", []),
                                        obj.get("conversation_id"), obj.get("metadata", {})))
    return Dataset(manifest.get("name", folder.name), corpus, questions, manifest)


def _dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def _jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    """Yields (``"file:line"``, object) for each non-blank line of a JSON Lines file."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DatasetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            yield where, obj


def _check(obj: dict, where: str, *, required: dict[str, Any], optional: dict[str, Any]) -> None:
    missing = [k for k in required if k not in obj]
    if missing:
        raise DatasetError(f"{where}: missing field(s) {missing}; expected {sorted(required)} "
                           f"and optionally {sorted(optional)}")
    for key, kind in {**required, **optional}.items():
        if key in obj and not isinstance(obj[key], kind):
            raise DatasetError(f"{where}: field '{key}' has type {type(obj[key]).__name__}, expected {kind}")
    if not obj["id"]:
        raise DatasetError(f"{where}: empty id")


def _unique(record_id: str, seen: dict[str, str], where: str) -> None:
    if record_id in seen:
        raise DatasetError(f"{where}: id {record_id!r} repeats (first at {seen[record_id]}); ids must be unique")
    seen[record_id] = where


# ---------------------------------------------------------------------------------------- conversion


@dataclass
class Pool:
    """Everything one source file holds, before sampling: what a converter returns.

    Attributes:
        corpus: every document, in source order, with unique ids.
        questions: every question, in source order, with unique ids.
        related: per question id, the documents that make natural hard distractors for it.
        default_distractors: ``(questions, evidence, related, others) -> count`` of non-evidence
            documents to keep when the caller gives none (arguments are the sampled counts).
        warnings: problems found in the source and worked around, for the manifest.
    """

    corpus: list[CorpusRecord]
    questions: list[QuestionRecord]
    related: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default_distractors: Callable[[int, int, int, int], int] = lambda q, e, r, o: r
    warnings: list[str] = field(default_factory=list)


Converter = Callable[[Path], Pool]


def convert_with(converter: Converter, fmt: str, source: Path, *, limit: int | None = None, seed: int = 0,
                 distractors: int | None = None) -> Dataset:
    """Converts a public QA file with ``converter`` into a Dataset, sampling reproducibly
    (`eval.converters.convert` picks the converter registered under a format name).

    Args:
        converter: Reads the source into a `Pool`.
        fmt: The format's name (for messages and the manifest).
        source: the source file (for hotpotqa/musique the question file; its ``*_corpus.json`` sibling
            is found beside it) or a folder holding exactly one such file.
        limit: how many questions to keep, chosen with ``random.Random(seed)``; None keeps everything.
        seed: the sampling seed.
        distractors: how many non-evidence documents to keep (related ones first); None means the
            format's default, or the whole corpus when ``limit`` is None.

    Raises:
        DatasetError: missing source, bad arguments, or a file not in that format.
    """
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be a positive number of questions or None, got {limit}")
    if distractors is not None and distractors < 0:
        raise DatasetError(f"distractors must be >= 0 or None for the format's default, got {distractors}")
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"source {source} does not exist")
    try:
        pool = converter(source)
    except DatasetError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        doc = (converter.__doc__ or "").strip().splitlines()
        raise DatasetError(f"{source} is not a {fmt} file ({type(exc).__name__}: {exc}); "
                           f"expected: {doc[0] if doc else fmt}") from exc
    _check_pool(pool, fmt, source)
    for warning in pool.warnings:
        log.warning("%s: %s", source.name, warning)
    return _sample(pool, fmt, source, limit, seed, distractors)


def _check_pool(pool: Pool, fmt: str, source: Path) -> None:
    """A converter's promise: unique ids, and every evidence id in the corpus."""
    doc_ids = {d.id for d in pool.corpus}
    if len(doc_ids) != len(pool.corpus):
        raise DatasetError(f"{fmt} converter gave repeated document ids for {source}")
    if len({q.id for q in pool.questions}) != len(pool.questions):
        raise DatasetError(f"{fmt} converter gave repeated question ids for {source}")
    for q in pool.questions:
        missing = [e for e in q.evidence_ids if e not in doc_ids]
        if missing:
            raise DatasetError(f"{source}: question {q.id!r} names evidence {missing} missing from its corpus")


def _sample(pool: Pool, fmt: str, source: Path, limit: int | None, seed: int,
            distractors: int | None) -> Dataset:
    """Picks the questions, then the evidence plus distractor documents, in source order."""
    rng = random.Random(seed)
    questions = pool.questions
    if limit is not None and limit < len(questions):
        chosen = set(rng.sample(range(len(questions)), limit))
        questions = [q for i, q in enumerate(questions) if i in chosen]
    evidence = dict.fromkeys(e for q in questions for e in q.evidence_ids)
    related = [d for d in dict.fromkeys(d for q in questions for d in pool.related.get(q.id, ()))
               if d not in evidence]
    taken = set(evidence).union(related)
    others = [d.id for d in pool.corpus if d.id not in taken]
    # Shuffled independently of the count, so a smaller `distractors` keeps a prefix of a larger one.
    rng.shuffle(related)
    rng.shuffle(others)
    if distractors is None:
        distractors = (len(related) + len(others) if limit is None
                       else pool.default_distractors(len(questions), len(evidence), len(related), len(others)))
    keep = set(evidence).union((related + others)[:distractors])
    corpus = [d for d in pool.corpus if d.id in keep]
    manifest = {
        "name": fmt,
        "format": fmt,
        "source": source.name,
        "limit": limit,
        "seed": seed,
        "distractors": len(corpus) - len(evidence),
        "questions": len(questions),
        "documents": len(corpus),
        "warnings": list(pool.warnings),
    }
    return Dataset(fmt, corpus, questions, manifest)
