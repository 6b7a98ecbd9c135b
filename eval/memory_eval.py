"""Conversational memory on LoCoMo: which granularity to recall, and does the entropy router pick well?

Each LoCoMo conversation is replayed into Tessera's memory as one user, session by session: consecutive
utterances pair up as exchanges (the first speaker's line as the "question", the reply as the "answer",
each prefixed with the session date, which temporal questions need). Then every question is asked of that
user's memory under four configurations, each giving the generator at most ``memory.budget_tokens`` words:

- ``full``: no retrieval; the conversation's most recent exchanges that fit the budget (what a chat
  without memory retrieval would carry);
- ``turn``: recall from turn units only;  ``summary``: session summaries only;  ``fact``: keyword facts
  only (not in the default set; ``--configs`` adds it);
- ``router``: the entropy router picks the granularity per question (the default).

Measured: recall@k of the evidence turns (a recalled turn or fact covers the utterances it was made
from; a session summary only those whose sentences it kept) on questions with evidence, and QA token F1 / exact match on a seeded sample
(the recalled block as numbered sources, Tessera's prompt). The adversarial category (5) has no answer in
the conversation: its abstention rate is reported apart.

Run: ``python -m eval.memory_eval data/locomo --out runs/memory --qa 100`` (building memory for the ten
conversations takes a few minutes; QA about 2 s per question and configuration).
"""

from __future__ import annotations

import argparse
import re
import json
import random
import statistics
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.answering import finish_answer, needs_example
from assistant.config import load_settings, parse_overrides
from assistant.models.registry import create_embedder, create_generator
from assistant.prompts import STOP, build_messages
from assistant.types import Exchange, Hit, MemoryUnit, Trace
from eval.datasets import Dataset, QuestionRecord, load_dataset
from tqdm.auto import tqdm

from eval.metrics import best_over_golds, exact_match, strip_citations, token_f1

CONFIGS = ("full", "turn", "summary", "fact", "router")
DEFAULT_CONFIGS = ("full", "turn", "summary", "router")


def replay(dataset: Any, memory: Any) -> dict[str, dict[str, set[str]]]:
    """Writes every conversation into memory; returns, per user, which dia ids each memory turn id covers."""
    by_conversation: dict[str, list[Any]] = defaultdict(list)
    for record in dataset.corpus:
        by_conversation[record.metadata["conversation_id"]].append(record)
    covers: dict[str, dict[str, set[str]]] = {}
    progress = tqdm(total=(len(dataset.corpus) + 1) // 2, desc="remembering", unit="exchange")
    for user, records in by_conversation.items():
        covers[user] = {}
        sessions: dict[int, list[Any]] = defaultdict(list)
        for r in records:
            sessions[r.metadata["session"]].append(r)
        for number in sorted(sessions):
            lines = sessions[number]
            for i in range(0, len(lines), 2):
                pair = lines[i : i + 2]
                date = pair[0].metadata.get("date", "")
                exchange = Exchange(f"[{date}] {pair[0].text}", pair[1].text if len(pair) > 1 else "")
                units = memory.remember(user, f"session-{number}", exchange)
                covers[user][units[0].turn_ids[0]] = {r.id for r in pair}
                progress.update()
    progress.close()
    return covers


def covered(units: list[MemoryUnit], turn_map: dict[str, set[str]], texts: dict[str, str]) -> set[str]:
    """The utterance ids the units hold: a turn or fact unit its own utterances; a session summary only the
    utterances whose text it kept (a summary spans its whole session but keeps a few sentences of it)."""
    ids = set()
    for unit in units:
        made_from = {d for t in unit.turn_ids for d in turn_map.get(t, ())}
        if unit.granularity == "summary":
            summary = " ".join(unit.text.split())
            made_from = {d for d in made_from if any(part in summary for part in _sentences(texts.get(d, "")))}
        ids |= made_from
    return ids


def _sentences(text: str) -> list[str]:
    body = text.split(": ", 1)[-1]  # without the "Speaker: " prefix
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(body.split())) if len(s.strip()) >= 20]


def first_conversations(dataset: Dataset, n: int | None) -> Dataset:
    """The dataset cut to its first ``n`` conversations (in corpus order); all of it when ``n`` is None."""
    if n is None:
        return dataset
    kept: list[str] = []
    for record in dataset.corpus:
        if (conversation := record.metadata["conversation_id"]) not in kept:
            kept.append(conversation)
    chosen = set(kept[:n])
    return replace(
        dataset,
        corpus=[r for r in dataset.corpus if r.metadata["conversation_id"] in chosen],
        questions=[q for q in dataset.questions if q.conversation_id in chosen],
    )


def recent_units(memory: Any, user: str, budget: int) -> list[MemoryUnit]:
    """The latest turn units of the whole conversation that fit ``budget`` words (the ``full`` baseline)."""
    turns = sorted(memory.units(user), key=lambda u: u.created_at)
    kept, used = [], 0
    for unit in reversed([u for u in turns if u.granularity == "turn"]):
        used += len(unit.text.split()) + 1
        if used > budget:
            break
        kept.append(unit)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="A dataset folder from `tessera eval convert locomo`")
    parser.add_argument("--out", type=Path, default=Path("runs/memory"))
    parser.add_argument("--home", type=Path, default=None, help="Tessera home (model cache); memory goes in OUT")
    parser.add_argument("--qa", type=int, default=100, help="Questions answered per configuration (seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conversations", type=int, default=None,
                        help="Only the first N conversations (for slow settings such as memory.summaries=llm)")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                        help=f"Comma-separated configurations to measure, of {', '.join(CONFIGS)}")
    parser.add_argument("--sampled-only", action="store_true",
                        help="Ask only the --qa sample (recall too): for settings that call the model per recall")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a setting, e.g. memory.summaries=llm or models.generator=qwen2.5-coder-0.5b")
    args = parser.parse_args()
    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    if unknown := [c for c in configs if c not in CONFIGS]:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")

    from memory import Memory, MemoryRecords
    from memory.storage import memory_store, records_path

    base = load_settings(parse_overrides(args.overrides) | ({"home": str(args.home)} if args.home else {}))
    settings = base.model_copy(update={"home": args.out / "home", "models": base.models.model_copy(update={"cache_dir": base.model_cache})})
    dataset = first_conversations(load_dataset(args.data), args.conversations)
    embedder = create_embedder(settings)
    generator = create_generator(settings)
    args.out.mkdir(parents=True, exist_ok=True)
    store = memory_store(settings)
    records = MemoryRecords(records_path(settings))
    # One memory, read through one `Memory` per router setting (they share the store and records).
    routed = {
        config: Memory(settings.model_copy(update={"memory": settings.memory.model_copy(update={"router": router})}),
                       embedder, store, records, generator)  # the generator writes llm summaries and filters
        for config, router in (("turn", "turn"), ("summary", "summary"), ("fact", "fact"), ("router", "entropy"))
    }
    shared = routed["turn"]
    marker = settings.memory_path / "complete.json"
    if marker.exists():
        covers = {u: {t: set(d) for t, d in m.items()} for u, m in json.loads(marker.read_text()).items()}
    else:
        covers = replay(dataset, shared)
        marker.write_text(json.dumps({u: {t: sorted(d) for t, d in m.items()} for u, m in covers.items()}))
    budget = settings.memory.budget_tokens
    texts = {r.id: r.text for r in dataset.corpus}
    rng = random.Random(args.seed)
    qa_ids = {q.id for q in rng.sample(list(dataset.questions), min(args.qa, len(dataset.questions)))}
    rows = []
    asked = [q for q in dataset.questions if q.id in qa_ids] if args.sampled_only else dataset.questions
    for question in tqdm(asked, desc="questions", unit="q"):
        user = question.conversation_id or ""
        for config in configs:
            if config == "full":
                units = recent_units(shared, user, budget)
                chosen: tuple[str, ...] = ("recent",)
            else:
                recall = routed[config].recall(user, "eval", question.question)
                units, chosen = list(recall.units), recall.chosen
            row = score(question, config, units, chosen, covers[user], texts, budget, generator if question.id in qa_ids else None)
            rows.append(row)
    store.close()
    records.close()
    (args.out / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    table = summary_table(rows, settings.memory.recall_k, configs)
    stats = {config: memory.llm_stats for config, memory in routed.items() if memory.llm_stats}
    if stats:
        (args.out / "llm_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
        table += "\n\nmodel-written memory (valid / fell back): " + json.dumps(stats)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


def score(question: QuestionRecord, config: str, units: list[MemoryUnit], chosen: tuple[str, ...],
          turn_map: dict[str, set[str]], texts: dict[str, str], budget: int, generator: Any) -> dict[str, Any]:
    evidence = set(question.evidence_ids)
    row: dict[str, Any] = {"id": question.id, "config": config, "category": question.metadata.get("category"),
                           "chosen": list(chosen), "answerable": question.answerable}
    if evidence:
        row["recall"] = len(evidence & covered(units, turn_map, texts)) / len(evidence)
    if generator is not None:
        hits, used = [], 0
        for n, unit in enumerate(units):
            words = unit.text.split()[: max(0, budget - used)]
            if not words:
                break
            used += len(words)
            hits.append(Hit(unit.id, " ".join(words), 1.0, f"memory:{unit.granularity}", unit.id, unit.session_id, unit.session_id))
        raw = generator.generate(build_messages(question.question, hits, example=needs_example(generator)),
                                 max_new_tokens=64, stop=STOP)
        answer = finish_answer(raw, hits, Trace())
        prediction = "" if answer.abstained else strip_citations(answer.text)
        golds = list(question.answers) or [""]
        row.update(answer=answer.text, abstained=answer.abstained,
                   f1=best_over_golds(token_f1, prediction, golds), em=best_over_golds(exact_match, prediction, golds))
    return row


def summary_table(rows: list[dict[str, Any]], k: int, configs: tuple[str, ...] = DEFAULT_CONFIGS) -> str:
    """Recall of evidence turns, QA F1/EM (non-adversarial) and adversarial abstention per configuration."""
    lines = [f"| configuration | evidence recall@{k} (n) | QA F1 | QA EM | n QA | adversarial abstention | routed to |",
             "|---|---|---|---|---|---|---|"]
    for config in configs:
        mine = [r for r in rows if r["config"] == config]
        rec = [r["recall"] for r in mine if "recall" in r and r["category"] != 5]
        qa = [r for r in mine if "f1" in r and r["category"] != 5]
        adv = [r for r in mine if "f1" in r and r["category"] == 5]
        routes = defaultdict(int)
        for r in mine:
            routes["+".join(r["chosen"])] += 1
        mean = lambda xs: f"{statistics.fmean(xs):.3f}" if xs else "—"  # noqa: E731
        lines.append(
            f"| {config} | {mean(rec)} ({len(rec)}) | {mean([r['f1'] for r in qa])} | {mean([r['em'] for r in qa])} | "
            f"{len(qa)} | {mean([float(r['abstained']) for r in adv])} ({len(adv)}) | "
            + ", ".join(f"{g} {c}" for g, c in sorted(routes.items(), key=lambda x: -x[1])) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
