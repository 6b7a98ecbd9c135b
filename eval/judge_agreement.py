"""Can a local model judge RAGAS' LLM metrics? Its agreement with labels the dev data gives us.

Each LLM-judged metric `eval.ragas_metrics` reports gets balanced, labelled items (seeded), scored by
ragas itself with the judge under test; a score of 0.5 or more counts as the judge saying "yes":

- **faithfulness** (is the answer stated by the contexts?): RGB's sentence holding the true answer against
  its true passage (yes) and against the falsified twin of that passage (no); the falsified sentence against
  the true passage (no).
- **answer_relevancy** (does the answer address the question?): RGB's true sentence for its own question
  (yes) and for another question of the set (no).
- **context_recall** and **llm_context_precision_with_reference** (do the contexts hold / help reach the
  reference answer?): an answerable SQuAD v2.0 question with its gold answer as reference, against its own
  paragraph (yes) and against another paragraph of the same article that lacks the answer (no). SQuAD v2.0's
  unanswerable questions cannot be used here: this copy has no plausible answers to serve as references.

Per metric: accuracy and Cohen's κ of the judge's yes/no against the labels, ROC AUC of its raw scores (no
threshold), how many items the judge failed to score (invalid JSON: counted apart, not as wrong) and
seconds per item. `eval.report` prints these figures beside the judged metrics of every `tessera eval run`.

Run: ``python -m eval.judge_agreement --judge qwen2.5-coder-0.5b --n 40`` (writes
``<home>/judge-agreement/<judge>.json``; `eval/judge_agreement/` keeps the measured files for the
bundled judges).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from assistant.models.base import Embedder, Generator
from eval.generator_choice import DEFAULT_RGB, DEFAULT_SQUAD
from eval.ragas_metrics import JUDGED_METRICS, METRIC_NAMES, NOT_REQUESTED, RagasEvaluator, RagasSample
from eval.support_study import rgb_passage_pairs

SHIPPED = Path(__file__).resolve().parent / "judge_agreement"
THRESHOLD = 0.5
_MIN_WORDS = 6


@dataclass(frozen=True)
class Item:
    """One labelled case for one metric."""

    metric: str
    kind: str
    label: bool
    sample: RagasSample


def _rgb_rows(path: Path) -> list[dict[str, str]]:
    """One true / falsified passage pair per RGB question whose two answer sentences are real sentences."""
    rows = []
    for pairs in rgb_passage_pairs(path):
        # A search snippet's fragment ("March 20, 2020 ; No.") is no answer to judge.
        long_enough = (p for p in pairs if min(len(p["true_sentence"].split()), len(p["fake_sentence"].split())) >= _MIN_WORDS)
        if (pair := next(long_enough, None)) is not None:
            rows.append(pair)
    return rows


def rgb_items(path: Path, rng: random.Random) -> list[Item]:
    """Faithfulness and answer-relevancy items from RGB's true / falsified passage pairs."""
    rows = _rgb_rows(path)
    items = []
    for i, row in enumerate(rows):
        q, said = row["question"], row["true_sentence"]
        items.append(Item("faithfulness", "rgb.true", True, RagasSample(q, said, [row["true"]])))
        items.append(Item("faithfulness", "rgb.falsified", False, RagasSample(q, said, [row["false"]])))
        items.append(Item("faithfulness", "rgb.fake", False, RagasSample(q, row["fake_sentence"], [row["true"]])))
        other = rows[rng.choice([j for j in range(len(rows)) if j != i])]
        items.append(Item("answer_relevancy", "rgb.own_question", True, RagasSample(q, said, [row["true"]])))
        items.append(Item("answer_relevancy", "rgb.other_question", False, RagasSample(other["question"], said, [row["true"]])))
    return items


def squad_items(path: Path, n: int, rng: random.Random) -> list[Item]:
    """Context recall / precision items: answerable SQuAD v2.0 questions against their own paragraph and a
    same-article paragraph without the answer."""
    data = json.loads(path.read_text())["data"]
    pool = [(article, p, q) for article in data for p in article["paragraphs"] for q in p["qas"] if q["answers"]]
    items = []
    for article, paragraph, qa in rng.sample(pool, len(pool)):
        if len(items) >= 4 * n:
            break
        answer = qa["answers"][0]["text"]
        others = [p["context"] for p in article["paragraphs"] if answer.lower() not in p["context"].lower()]
        if not others:
            continue
        other = rng.choice(others)
        for metric in ("context_recall", "llm_context_precision_with_reference"):
            items.append(Item(metric, "squad.own_paragraph", True, RagasSample(qa["question"], answer, [paragraph["context"]], answer)))
            items.append(Item(metric, "squad.other_paragraph", False, RagasSample(qa["question"], answer, [other], answer)))
    return items


def balanced(items: list[Item], metric: str, n: int, rng: random.Random) -> list[Item]:
    """``n`` items of ``metric``, half labelled yes and half no, in a seeded order."""
    yes = [i for i in items if i.metric == metric and i.label]
    no = [i for i in items if i.metric == metric and not i.label]
    chosen = rng.sample(yes, min(n // 2, len(yes))) + rng.sample(no, min(n - n // 2, len(no)))
    rng.shuffle(chosen)
    return chosen


def cohen_kappa(said: list[bool], labels: list[bool]) -> float | None:
    """Cohen's κ of two yes/no raters; None when chance agreement is total (both constant and equal)."""
    n = len(said)
    if not n:
        return None
    observed = sum(s == l for s, l in zip(said, labels)) / n
    p_said, p_label = sum(said) / n, sum(labels) / n
    chance = p_said * p_label + (1 - p_said) * (1 - p_label)
    return None if chance == 1 else (observed - chance) / (1 - chance)


def roc_auc(scores: list[float], labels: list[bool]) -> float | None:
    """P(a yes item scores above a no item), ties counting half; None without both kinds."""
    pos = [s for s, l in zip(scores, labels) if l]
    neg = [s for s, l in zip(scores, labels) if not l]
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def agreement(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary of one metric's judged items."""
    scored = [r for r in results if r["score"] is not None]
    said = [r["score"] >= THRESHOLD for r in scored]
    labels = [r["label"] for r in scored]
    kappa = cohen_kappa(said, labels)
    auc = roc_auc([r["score"] for r in scored], labels)
    by_kind: dict[str, list[float]] = {}
    for r in scored:
        by_kind.setdefault(r["kind"], []).append(r["score"])
    return {
        "n": len(results),
        "failed": len(results) - len(scored),
        "accuracy": round(sum(s == l for s, l in zip(said, labels)) / len(scored), 3) if scored else None,
        "kappa": None if kappa is None else round(kappa, 3),
        "auc": None if auc is None else round(auc, 3),
        "mean_score_by_kind": {k: round(statistics.fmean(v), 3) for k, v in sorted(by_kind.items())},
        "seconds_p50": round(statistics.median(r["seconds"] for r in results), 2) if results else None,
    }


def measure(
    embedder: Embedder, judge: Generator, judge_name: str, n: int, seed: int, squad: Path, rgb: Path, out: Path
) -> dict[str, Any]:
    """Scores ``n`` balanced items per judged metric with ``judge`` and writes ``<out>/<judge_name>.json``
    (the summary) and ``<out>/<judge_name>.items.jsonl`` (every item's score and the judge's failure)."""
    rng = random.Random(seed)
    pool = rgb_items(rgb, rng) + squad_items(squad, n, rng)
    out.mkdir(parents=True, exist_ok=True)
    items_path = out / f"{judge_name}.items.jsonl"
    summary: dict[str, Any] = {
        "judge": judge_name,
        "threshold": THRESHOLD,
        "seed": seed,
        "commit": _commit(),
        "command": f"python -m eval.judge_agreement --judge {judge_name} --n {n} --seed {seed}",
        "metrics": {},
    }
    with items_path.open("w") as sink:
        for metric in JUDGED_METRICS:
            evaluator = RagasEvaluator(embedder, judge, skip={m: NOT_REQUESTED for m in METRIC_NAMES if m != metric})
            results = []
            for item in tqdm(balanced(pool, metric, n, rng), desc=metric, unit="item"):
                began = time.perf_counter()
                value = evaluator.score([item.sample])[0][metric]
                row = {"metric": metric, "kind": item.kind, "label": item.label, "score": value.value,
                       "reason": value.reason, "seconds": round(time.perf_counter() - began, 2),
                       "question": item.sample.question, "answer": item.sample.answer}
                results.append(row)
                sink.write(json.dumps(row, ensure_ascii=False) + "\n")
                sink.flush()
            summary["metrics"][metric] = agreement(results)
            print(metric, json.dumps(summary["metrics"][metric]), file=sys.stderr)
    (out / f"{judge_name}.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def load_agreement(judge_name: str, home: Path | None = None) -> dict[str, Any] | None:
    """The measured agreement of ``judge_name``: the user's own run under ``<home>/judge-agreement`` first,
    else the file shipped for the bundled judges; None when it was never measured."""
    folders = ([home / "judge-agreement"] if home is not None else []) + [SHIPPED]
    for folder in folders:
        path = folder / f"{judge_name}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                continue
    return None


# Landis & Koch's "moderate" agreement begins above 0.4; below it a judged score says little about the answer.
TRUSTED_KAPPA = 0.4


def untrusted(agreement: dict[str, Any] | None) -> dict[str, str]:
    """The judged metrics a judge's measured agreement does not support, each with the reason (for reports);
    a judge never measured is trusted on all of them (the report says it was never measured)."""
    if agreement is None:
        return {}
    reasons = {}
    for name in JUDGED_METRICS:
        kappa = agreement["metrics"].get(name, {}).get("kappa")
        if kappa is None or kappa <= TRUSTED_KAPPA:
            shown = "not measured" if kappa is None else f"Cohen's κ {kappa:.2f} ≤ {TRUSTED_KAPPA}"
            reasons[name] = (
                f"judge {agreement['judge']} does not agree with labels on this metric ({shown}; "
                "python -m eval.judge_agreement); set eval.judge_metrics to score it anyway"
            )
    return reasons


def left_out(chosen: Sequence[str] | None, agreement: dict[str, Any] | None) -> dict[str, str]:
    """The judged metrics a run leaves out, each with the reason: those not in ``chosen``
    (`eval.judge_metrics`) or, when nothing was chosen, those the judge's agreement does not support."""
    if chosen is not None:
        return {m: "not in eval.judge_metrics" for m in JUDGED_METRICS if m not in chosen}
    return untrusted(agreement)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    from assistant.config import Settings
    from assistant.models.registry import create_embedder, create_generator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", default="qwen2.5-coder-0.5b", help="generator registry name of the judge")
    parser.add_argument("--n", type=int, default=40, help="items per metric (half labelled yes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    parser.add_argument("--rgb", type=Path, default=DEFAULT_RGB)
    parser.add_argument("--out", type=Path, default=None, help="default: <home>/judge-agreement")
    args = parser.parse_args()
    settings = Settings()
    out = args.out or settings.home / "judge-agreement"
    embedder, judge = create_embedder(settings), create_generator(settings, args.judge)
    summary = measure(embedder, judge, args.judge, args.n, args.seed, args.squad, args.rgb, out)
    print("| metric | n | failed | accuracy | Cohen's κ | AUC | s/item p50 |")
    print("|---|---|---|---|---|---|---|")
    for name, m in summary["metrics"].items():
        print(f"| {name} | {m['n']} | {m['failed']} | {m['accuracy']} | {m['kappa']} | {m['auc']} | {m['seconds_p50']} |")
    print(f"written to {out / (args.judge + '.json')}")


if __name__ == "__main__":
    main()
