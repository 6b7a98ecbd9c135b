"""Converters from public QA sets to Tessera's dataset format (see ``eval/datasets.py``): the registry
(`FORMATS`, `register`, `convert`) and the built-ins.

Each converter reads one source file into a ``Pool`` (every document and question, plus each
question's *related* documents) and registers itself in ``FORMATS``. Default distractors, i.e. the
non-evidence documents kept when sampling with ``limit`` and no ``distractors``:

- squad, squad-v2: a corpus record per paragraph, id ``"{title}#{i}"``; distractors: every paragraph of
  the sampled questions' articles, then a seeded sample of others until the corpus holds ~10 documents
  per question.
- hotpotqa: a record per paragraph, id = its title; distractors: each question's own 10 context paragraphs.
- musique: a record per paragraph, id ``"{title}#{k}"`` (the k-th paragraph of that title: titles repeat);
  distractors: each question's own 20 listed paragraphs.
- rgb: a record per passage, id ``"rgb:{qid}:{pos|wrong|neg}:{i}"``; distractors: each question's own
  falsified (``wrong``) and noise (``neg``) passages.
- rgb-sources: RGB's passages as articles of invented outlets on given dates (``metadata`` site, date), and
  questions that name an outlet, a date or two outlets (see `rgb_sources`); distractors as rgb.
- locomo: a record per dialogue turn, id ``"{sample_id}:{dia_id}"``; distractors: every turn of the
  sampled questions' conversations (questions carry ``conversation_id`` to scope retrieval).
- amnesty-qa: a record per relevant chunk, id ``"amnesty:{row}:{j}"``; distractors: every chunk of the
  file (the set is tiny).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from eval.datasets import Converter, CorpusRecord, Dataset, DatasetError, Pool, QuestionRecord, convert_with

FORMATS: dict[str, Converter] = {}


def register(name: str) -> Callable[[Converter], Converter]:
    """Registers a converter under ``name``; built-ins register the same way an extension would."""

    def add(converter: Converter) -> Converter:
        FORMATS[name] = converter
        return converter

    return add


def convert(fmt: str, source: Path, *, limit: int | None = None, seed: int = 0,
            distractors: int | None = None) -> Dataset:
    """Converts a public QA file in a registered format into a Dataset (see `eval.datasets.convert_with`).

    Raises:
        DatasetError: unknown format, missing source, bad arguments, or a file not in that format.
    """
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; known formats: {', '.join(sorted(FORMATS))}")
    return convert_with(FORMATS[fmt], fmt, source, limit=limit, seed=seed, distractors=distractors)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None


def _read_jsonl(path: Path) -> list[Any]:
    rows = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
    return rows


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    """Order-preserving dedupe (gold answers repeat across annotators)."""
    return tuple(dict.fromkeys(items))


def _with_corpus(source: Path, fmt: str) -> tuple[Path, Path | None]:
    """The question file and its ``{stem}_corpus.json`` sibling, if there is one."""
    if source.is_dir():
        found = sorted(p for p in source.glob(f"*{fmt}*.json") if not p.stem.endswith("_corpus"))
        if len(found) != 1:
            raise DatasetError(f"{source}: expected exactly one {fmt} question file (*{fmt}*.json), found "
                               f"{[p.name for p in found]}; pass the file itself")
        source = found[0]
    if source.stem.endswith("_corpus"):
        raise DatasetError(f"{source} is a corpus file; pass the question file beside it")
    corpus = source.with_name(f"{source.stem}_corpus{source.suffix}")
    return source, corpus if corpus.is_file() else None


# ------------------------------------------------------------------------------------------------ SQuAD


def _squad_default(questions: int, evidence: int, related: int, others: int) -> int:
    # Whole articles make retrieval non-trivial (same topic); top up to ~10 documents per question.
    return max(related, 10 * questions - evidence)


@register("squad")
def squad(source: Path) -> Pool:
    """SQuAD v1.1 JSON: ``{data: [{title, paragraphs: [{context, qas: [{id, question, answers}]}]}]}``."""
    corpus, questions, related = [], [], {}
    for article in _read_json(source)["data"]:
        title = article["title"]
        ids = tuple(f"{title}#{i}" for i in range(len(article["paragraphs"])))
        for i, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            meta = {"article": title, "paragraph": i}
            corpus.append(CorpusRecord(ids[i], title.replace("_", " "), context, meta))
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers = () if impossible else _unique(a["text"] for a in qa["answers"])
                spans: dict[str, Any] = {"article": title, "evidence_texts": [a for a in answers if a in context]}
                if "is_impossible" in qa:
                    spans["is_impossible"] = impossible
                # The paragraph stays the evidence even when unanswerable: it is what the question tricks.
                questions.append(QuestionRecord(qa["id"], qa["question"], answers, (ids[i],), None, spans))
                related[qa["id"]] = ids
    return Pool(corpus, questions, related, _squad_default)


@register("squad-v2")
def squad_v2(source: Path) -> Pool:
    """SQuAD v2.0 JSON: like v1.1, with ``is_impossible`` questions (empty answers: abstain)."""
    return squad(source)


# ------------------------------------------------------------------------------------- HotpotQA, MuSiQue


@register("hotpotqa")
def hotpotqa(source: Path) -> Pool:
    """HotpotQA JSON list ``[{_id, question, answer, type, level, supporting_facts, context}]``, with an
    optional ``{stem}_corpus.json`` beside it (``{title: [sentences]}``)."""
    source, corpus_path = _with_corpus(source, "hotpotqa")
    items = _read_json(source)
    paragraphs: dict[str, list[str]] = dict(_read_json(corpus_path)) if corpus_path else {}
    for item in items:
        for title, sentences in item["context"]:
            paragraphs.setdefault(title, sentences)
    # Sentences carry their leading spaces, so joining them restores the paragraph.
    corpus = [CorpusRecord(title, title, "".join(sentences), {}) for title, sentences in paragraphs.items()]
    questions, related, bad = [], {}, []
    for item in items:
        facts = []
        for title, index in item["supporting_facts"]:
            if title in paragraphs and 0 <= index < len(paragraphs[title]):
                facts.append((title, index))
            else:  # the original HotpotQA has a few facts pointing past a paragraph's end
                bad.append(f"{item['_id']}:{title}#{index}")
        meta = {"type": item.get("type"), "level": item.get("level"),
                "evidence_texts": list(_unique(paragraphs[t][i].strip() for t, i in facts))}
        questions.append(QuestionRecord(item["_id"], item["question"], (str(item["answer"]),),
                                        _unique(t for t, _ in facts), None, meta))
        related[item["_id"]] = tuple(title for title, _ in item["context"])
    warnings = [f"dropped {len(bad)} supporting facts missing from the corpus: {bad}"] if bad else []
    return Pool(corpus, questions, related, warnings=warnings)


@register("musique")
def musique(source: Path) -> Pool:
    """MuSiQue JSON list ``[{id, question, answer, answer_aliases, answerable, question_decomposition,
    paragraphs: [{idx, title, paragraph_text, is_supporting}]}]``, with an optional ``{stem}_corpus.json``
    beside it (``[{title, text}]``)."""
    source, corpus_path = _with_corpus(source, "musique")
    items = _read_json(source)
    entries = [(d["title"], d["text"]) for d in _read_json(corpus_path)] if corpus_path else []
    entries += [(p["title"], p["paragraph_text"]) for item in items for p in item["paragraphs"]]
    ids: dict[tuple[str, str], str] = {}
    per_title: Counter[str] = Counter()
    corpus = []
    for title, text in entries:
        if (title, text) not in ids:  # titles repeat with different paragraphs, so number them
            ids[title, text] = f"{title}#{per_title[title]}"
            per_title[title] += 1
            corpus.append(CorpusRecord(ids[title, text], title, text, {}))
    questions, related = [], {}
    for item in items:
        paragraphs = {p["idx"]: p for p in item["paragraphs"]}
        pid = {idx: ids[p["title"], p["paragraph_text"]] for idx, p in paragraphs.items()}
        steps = item.get("question_decomposition") or []
        # Evidence in hop order (the decomposition's), then any other supporting paragraph.
        order = [s.get("paragraph_support_idx") for s in steps] + list(paragraphs)
        support = _unique(i for i in order if i in paragraphs and paragraphs[i]["is_supporting"])
        answerable = item.get("answerable", True)
        answers = _unique([item["answer"], *item.get("answer_aliases", [])]) if answerable else ()
        meta = {
            "type": item["id"].split("__")[0] if "__" in item["id"] else None,
            "evidence_texts": [paragraphs[i]["paragraph_text"] for i in support],
            "decomposition": [{"question": s["question"], "answer": s["answer"],
                               "evidence_id": pid.get(s.get("paragraph_support_idx"))} for s in steps],
        }
        questions.append(QuestionRecord(item["id"], item["question"], answers, tuple(pid[i] for i in support),
                                        None, meta))
        related[item["id"]] = tuple(pid.values())
    return Pool(corpus, questions, related)


# ---------------------------------------------------------------------------------------------------- RGB


def _rgb_answers(answer: Any) -> tuple[tuple[str, ...], list[list[str]]]:
    """RGB answers: a string, a list of alternatives, or a list of parts each a list of alternatives."""
    if isinstance(answer, str):
        return (answer,), [[answer]]
    parts = [[str(a) for a in part] if isinstance(part, list) else [str(part)] for part in answer]
    if not any(isinstance(part, list) for part in answer):
        parts = [[str(a) for a in answer]]  # a flat list: alternatives of one answer
    return _unique(a for part in parts for a in part), parts


@register("rgb")
def rgb(source: Path) -> Pool:
    """RGB JSON Lines ``{id, query, answer, fakeanswer, positive[], positive_wrong[], negative[]}``."""
    corpus, questions, related = [], [], {}
    for row in _read_jsonl(source):
        qid, seen = f"rgb:{row['id']}", set()
        roles: dict[str, list[CorpusRecord]] = {"pos": [], "wrong": [], "neg": []}
        for role, key in (("pos", "positive"), ("wrong", "positive_wrong"), ("neg", "negative")):
            for i, text in enumerate(row.get(key) or []):
                if text not in seen:  # the source repeats a few passages; one id per text
                    seen.add(text)
                    meta = {"role": role, "question_id": qid}
                    roles[role].append(CorpusRecord(f"{qid}:{role}:{i}", "", text, meta))
        answers, parts = _rgb_answers(row["answer"])
        info: dict[str, Any] = {"fakeanswer": row.get("fakeanswer"), "evidence_texts": [d.text for d in roles["pos"]]}
        if len(parts) > 1:
            info["answer_parts"] = parts  # every part is needed for a right answer
        docs = [d for group in roles.values() for d in group]
        corpus += docs
        questions.append(QuestionRecord(qid, row["query"], answers, tuple(d.id for d in roles["pos"]), None, info))
        related[qid] = tuple(d.id for d in docs)
    return Pool(corpus, questions, related)


# Invented outlet names (no real outlet is made to report RGB's falsified passages).
_OUTLETS = (
    "The Harbor Ledger", "Northwind Daily", "Meridian Post", "The Civic Lantern", "Copperfield Times",
    "Ridgeline Review", "The Quarry Gazette", "Bluewater Herald", "Summit Wire", "The Lamplight Journal",
    "Foxglove News", "Granite Courier",
)  # fmt: skip


@register("rgb-sources")
def rgb_sources(source: Path) -> Pool:
    """RGB recast as news from named outlets on given dates: questions that name a source, a date, or two sources.

    Each RGB question's true passages are published by one invented outlet on one day, its falsified
    passages by another outlet on another day, its noise passages by others (document ``metadata``: ``site``,
    ``date``). The texts barely differ, so only the metadata tells the groups apart. Questions rotate over
    three kinds (``metadata["kind"]``):

    - ``source``: "According to {outlet}: {query}?" (the true or, every other time, the falsified outlet);
      evidence: that outlet's passages, answer: what it says;
    - ``date``: "{query}, as reported on {Month D, YYYY}?" with one group's date; evidence and answer as above;
    - ``both``: "What did {outlet A} and {outlet B} report: {query}?"; evidence: both groups.
    """
    import datetime as dt

    base = rgb(source)
    by_question: dict[str, dict[str, list[CorpusRecord]]] = {}
    for record in base.corpus:
        group = by_question.setdefault(record.metadata["question_id"], {"pos": [], "wrong": [], "neg": []})
        group[record.metadata["role"]].append(record)
    corpus, questions, related = [], [], {}
    start = dt.date(2023, 1, 2)
    for i, q in enumerate(base.questions):
        groups = by_question[q.id]
        outlet = {"pos": _OUTLETS[i % len(_OUTLETS)], "wrong": _OUTLETS[(i + 1 + i % 5) % len(_OUTLETS)]}
        day = {"pos": start + dt.timedelta(days=(i * 11) % 330), "wrong": start + dt.timedelta(days=(i * 11) % 330 + 3 + i % 20)}
        for role, records in groups.items():
            for j, r in enumerate(records):
                site = outlet.get(role) or _OUTLETS[(i + 2 + j) % len(_OUTLETS)]
                when = day.get(role) or start + dt.timedelta(days=(i * 7 + 13 * j) % 360)
                corpus.append(CorpusRecord(r.id, "", r.text, {**r.metadata, "site": site, "date": when.isoformat()}))
        query = q.question.rstrip(" ?")
        kind = ("source", "date", "both")[i % 3]
        role = "wrong" if (i // 3) % 2 else "pos"
        said = {"pos": q.answers, "wrong": (str(q.metadata.get("fakeanswer") or ""),)}
        if kind == "both":
            text = f"What did {outlet['pos']} and {outlet['wrong']} report: {query}?"
            evidence = tuple(r.id for r in groups["pos"] + groups["wrong"])
            answers = tuple(dict.fromkeys(q.answers + said["wrong"]))
        else:
            when = day[role]
            text = f"According to {outlet[role]}: {query}?" if kind == "source" else f"{query}, as reported on {when:%B} {when.day}, {when.year}?"
            evidence, answers = tuple(r.id for r in groups[role]), said[role]
        info = {"kind": kind, "evidence_texts": [r.text for r in groups["pos" if kind != "both" and role == "pos" else "wrong"]]}
        if kind == "both":
            info["evidence_texts"] = [r.text for r in groups["pos"] + groups["wrong"]]
        questions.append(QuestionRecord(q.id, text, answers, evidence, None, info))
        related[q.id] = base.related[q.id]
    return Pool(corpus, questions, related)


# ------------------------------------------------------------------------------------------------- LoCoMo

_LOCOMO_TYPES = {1: "multi-hop", 2: "single-hop", 3: "temporal", 4: "open-domain", 5: "adversarial"}
_SESSION = re.compile(r"session_(\d+)")
_DIA_ID = re.compile(r"D:?(\d+):0*(\d+)")  # also reads "D:11:26" and "D30:05"


def _locomo_answers(qa: dict) -> tuple[str, ...]:
    if qa["category"] == 5:  # adversarial: the conversation doesn't say, so abstain
        return ()
    answer = str(qa["answer"])
    # Some answers are "answer; reason": the head alone must also count as right.
    return _unique([answer, answer.split(";")[0].strip()]) if ";" in answer else (answer,)


@register("locomo")
def locomo(source: Path) -> Pool:
    """LoCoMo JSON list ``[{sample_id, conversation: {session_N: [{speaker, dia_id, text}],
    session_N_date_time}, qa: [{question, answer | adversarial_answer, evidence, category}]}]``."""
    corpus, questions, related = [], [], {}
    repaired, dropped = [], []
    for sample in _read_json(source):
        cid, conversation = sample["sample_id"], sample["conversation"]
        turns: dict[str, CorpusRecord] = {}
        sessions = sorted((int(m.group(1)), key) for key in conversation if (m := _SESSION.fullmatch(key)))
        for number, key in sessions:
            date = conversation.get(f"{key}_date_time", "")
            for turn in conversation[key]:
                text = f"{turn['speaker']}: {turn['text']}"
                if turn.get("blip_caption"):  # questions ask about shared photos too
                    text += f" [shares a photo: {turn['blip_caption']}]"
                meta = {"conversation_id": cid, "session": number, "date": date, "speaker": turn["speaker"],
                        "dia_id": turn["dia_id"]}
                turns.setdefault(turn["dia_id"], CorpusRecord(f"{cid}:{turn['dia_id']}", f"{cid} session {number}",
                                                              text, meta))
        corpus += turns.values()
        turn_ids = tuple(d.id for d in turns.values())
        for i, qa in enumerate(sample["qa"]):
            dia_ids = []
            for raw in qa.get("evidence", []):
                if raw in turns:
                    dia_ids.append(raw)
                    continue
                # Malformed ids ("D8:6; D9:17", "D:11:26"): keep the parts naming real turns.
                parts = [f"D{s}:{t}" for s, t in _DIA_ID.findall(raw)]
                good = [p for p in parts if p in turns]
                dia_ids += good
                (repaired if good else dropped).append(f"{cid}:{raw!r}")
            evidence = _unique(dia_ids)
            meta: dict[str, Any] = {"category": qa["category"], "type": _LOCOMO_TYPES.get(qa["category"]),
                                    "evidence_texts": [turns[d].text for d in evidence]}
            if "adversarial_answer" in qa:
                meta["adversarial_answer"] = str(qa["adversarial_answer"])
            qid = f"{cid}:q{i}"
            questions.append(QuestionRecord(qid, qa["question"], _locomo_answers(qa),
                                            tuple(f"{cid}:{d}" for d in evidence), cid, meta))
            related[qid] = turn_ids
    warnings = []
    if repaired or dropped:
        warnings.append(f"{len(repaired) + len(dropped)} malformed evidence ids in the source: "
                        f"{len(repaired)} repaired {repaired}, {len(dropped)} dropped {dropped}")
    return Pool(corpus, questions, related, warnings=warnings)


# --------------------------------------------------------------------------------------------- amnesty-qa


@register("amnesty-qa")
def amnesty_qa(source: Path) -> Pool:
    """amnesty-qa JSON list ``[{input, relevant_chunks[], output, ground_truth}]``."""
    corpus, questions, ids = [], [], {}
    for i, row in enumerate(_read_json(source)):
        chunks = _unique(row["relevant_chunks"])
        for j, chunk in enumerate(chunks):
            if chunk not in ids:  # a chunk shared by two rows is one document
                ids[chunk] = f"amnesty:{i}:{j}"
                corpus.append(CorpusRecord(ids[chunk], "", chunk, {}))
        truth = row["ground_truth"]
        answers = _unique([truth] if isinstance(truth, str) else truth)
        meta = {"given_answer": row.get("output"), "evidence_texts": list(chunks)}
        questions.append(QuestionRecord(f"amnesty:{i}", row["input"], answers, tuple(ids[c] for c in chunks),
                                        None, meta))
    return Pool(corpus, questions, {}, lambda q, e, r, o: r + o)
