"""Where the gold passage sits, and whether attention sorting helps: a "lost in the middle" study.

Each sampled answerable SQuAD v2.0 question gets its gold paragraph among ``--distractors`` paragraphs of
the same article (same topic, so they are hard to tell apart), with the gold placed first, in the middle
or last. Three orderings then go to the generator through Tessera's own prompt and answer handling:

- ``retrieval``: the list as placed (position = where the gold sits in the prompt);
- ``reversed``: the list reversed (a first gold ends up last, and so on);
- ``attention``: attention sorting (`assistant.ordering`) starting from the placed list.

Each answer is scored by SQuAD exact match and token F1. Rows are appended to ``answers.jsonl`` as they are
made, so an interrupted run resumes; the table and paired tests are printed and written to ``summary.md``.

Run: ``python -m eval.positions --n 200 --out runs/positions``: about 50 s per question on two cores (nine
generations and three sorting passes over a ~1,800-token prompt), so close to three hours. ``--shard K/N`` runs
every N-th question from the K-th, so N one-thread processes (``OMP_NUM_THREADS=1``) share the machine — a
little faster here than one two-thread process; they append to the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.answering import finish_answer, needs_example
from assistant.config import Settings
from assistant.models.base import Message
from assistant.models.registry import create_generator
from assistant.ordering import ContextOrderer
from assistant.prompts import STOP, build_messages, source_blocks
from assistant.types import Hit, Trace
from eval.compare import paired_randomisation_p
from eval.generator_choice import DEFAULT_SQUAD
from eval.metrics import best_over_golds, exact_match, strip_citations, token_f1

POSITIONS = ("first", "middle", "last")
ORDERS = ("retrieval", "reversed", "attention")


def sample_items(path: Path, n: int, seed: int, distractors: int) -> list[dict[str, Any]]:
    """``n`` answerable questions whose article has enough other paragraphs, each with its distractors."""
    data = json.loads(path.read_text())["data"]
    rng = random.Random(seed)
    pool = [
        (a, p, q)
        for a in data
        for p in a["paragraphs"]
        for q in p["qas"]
        if q["answers"] and len(a["paragraphs"]) > distractors
    ]
    items = []
    for article, paragraph, qa in rng.sample(pool, n):
        others = [p["context"] for p in article["paragraphs"] if p is not paragraph]
        items.append(
            {
                "id": qa["id"],
                "question": qa["question"],
                "answers": sorted({a["text"] for a in qa["answers"]}),
                "title": article["title"].replace("_", " "),
                "gold": paragraph["context"],
                "distractors": rng.sample(others, distractors),
            }
        )
    return items


def placed(item: dict[str, Any], position: str) -> list[Hit]:
    """The distractors with the gold paragraph inserted first, in the middle or last, as hits."""
    texts = list(item["distractors"])
    at = {"first": 0, "middle": len(texts) // 2, "last": len(texts)}[position]
    texts.insert(at, item["gold"])
    return [
        Hit(f"{'gold' if t is item['gold'] else f'd{i}'}", t, 1.0, item["title"], f"p{i}", f"p{i}", item["title"])
        for i, t in enumerate(texts)
    ]


def answer(item: dict[str, Any], hits: list[Hit], order: str, generator: Any, settings: Settings) -> dict[str, Any]:
    example = needs_example(generator)

    def prompt_for(ordered: Sequence[Hit]) -> tuple[list[Message], list[str]]:
        return build_messages(item["question"], ordered, example=example), source_blocks(ordered)

    trace = Trace()
    if order == "reversed":
        ordered = hits[::-1]
    elif order == "attention":
        ordered = ContextOrderer("attention", settings.context.sort_rounds).arrange(hits, generator, prompt_for, trace)
    else:
        ordered = hits
    began = time.perf_counter()
    raw = generator.generate(
        build_messages(item["question"], ordered, example=example),
        max_new_tokens=settings.models.max_new_tokens,
        stop=STOP,
    )
    seconds = time.perf_counter() - began
    result = finish_answer(raw, ordered, trace)
    prediction = "" if result.abstained else strip_citations(result.text)
    return {
        "order": order,
        "gold_at": [h.unit_id for h in ordered].index("gold"),
        "raw": raw,
        "em": best_over_golds(exact_match, prediction, item["answers"]),
        "f1": best_over_golds(token_f1, prediction, item["answers"]),
        "generate_seconds": seconds,
        "order_seconds": trace.seconds("order"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """EM / F1 per gold position and ordering, where the gold paragraph ended up, and what each step took."""
    lines = [
        "| gold placed | ordering | n | EM | F1 | gold ends at (mean index) | ordering s (p50) | generation s (p50) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for position in POSITIONS:
        for order in ORDERS:
            got = [r for r in rows if r["position"] == position and r["order"] == order]
            if not got:
                continue
            em = 100 * statistics.fmean(r["em"] for r in got)
            f1 = 100 * statistics.fmean(r["f1"] for r in got)
            gold_at = statistics.fmean(r["gold_at"] for r in got)
            ordering = statistics.median(r["order_seconds"] for r in got)
            generation = statistics.median(r["generate_seconds"] for r in got)
            lines.append(
                f"| {position} | {order} | {len(got)} | {em:.1f} | {f1:.1f} | {gold_at:.1f} | "
                f"{ordering:.2f} | {generation:.2f} |"
            )
    return "\n".join(lines)


def paired_tests(rows: list[dict[str, Any]]) -> str:
    """Attention sorting against each other ordering: paired sign-flip tests per placement and pooled."""
    import numpy as np

    by_key = {(r["id"], r["position"], r["order"]): r for r in rows}
    lines = ["| placement | attention vs | pairs | Δ EM | p | Δ F1 | p |", "|---|---|---|---|---|---|---|"]
    for position in (*POSITIONS, "pooled"):
        for other in ("retrieval", "reversed"):
            keys = [
                (i, pos)
                for (i, pos, order) in by_key
                if order == "attention" and (position == "pooled" or pos == position) and (i, pos, other) in by_key
            ]
            if not keys:
                continue
            cells = [f"| {position} | {other} | {len(keys)} "]
            for metric in ("em", "f1"):
                mine = np.array([by_key[(i, pos, "attention")][metric] for i, pos in keys])
                theirs = np.array([by_key[(i, pos, other)][metric] for i, pos in keys])
                p = paired_randomisation_p(theirs, mine)
                cells.append(f"| {100 * (mine.mean() - theirs.mean()):+.1f} | {p:.3f} ")
            lines.append("".join(cells) + "|")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distractors", type=int, default=10)
    parser.add_argument("--home", type=Path, default=None, help="Tessera home (for the model cache)")
    parser.add_argument("--generator", default=None, help="Registry name (default: models.generator)")
    parser.add_argument("--out", type=Path, default=Path("runs/positions"))
    parser.add_argument("--shard", default="0/1", help="K/N: run questions K, K+N, K+2N... (N parallel processes)")
    args = parser.parse_args()
    shard, shards = map(int, args.shard.split("/"))
    if not 0 <= shard < shards:
        parser.error(f"--shard must be K/N with 0 <= K < N, got {args.shard}")

    settings = Settings(**({"home": str(args.home)} if args.home else {}))
    generator = create_generator(settings, args.generator)
    items = sample_items(args.squad, args.n, args.seed, args.distractors)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "answers.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    done = {(r["id"], r["position"], r["order"]) for r in rows}
    # Append mode: each row is one write of one line, so parallel shards never interleave within a row.
    with path.open("a") as sink:
        for number, item in enumerate(items, 1):
            if (number - 1) % shards != shard:
                continue
            for position in POSITIONS:
                hits = placed(item, position)
                for order in ORDERS:
                    if (item["id"], position, order) in done:
                        continue
                    row = {"id": item["id"], "position": position} | answer(item, hits, order, generator, settings)
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
            print(f"{number}/{len(items)} (pid {os.getpid()})", flush=True)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    summary = table(rows) + "\n\nPaired sign-flip tests (10,000 flips):\n\n" + paired_tests(rows)
    (args.out / "summary.md").write_text(summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
