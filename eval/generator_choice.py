"""Which offline generator answers best within the latency budget? Reading comprehension on three dev sets.

Every question is answered from four passages — the default ``retrieval.top_k`` — through Tessera's own
prompt and answer post-processing (`finish_answer`), so the table measures the generator alone:

- **SQuAD v2.0**: the gold paragraph plus three others of the same article, shuffled (seeded). SQuAD's exact
  match and token F1; an unanswerable question scores 1 only when the model abstains; abstention
  precision/recall/F1 with "unanswerable" as the positive class.
- **HotpotQA** (distractor setting): the two supporting paragraphs plus two of the question's distractors,
  shuffled. EM and F1 against the answer.
- **RGB counterfactual**: two true passages, one with the answer falsified and one noise passage where the
  set has them (else what it has), shuffled: ``correct`` (the answer contains the true answer), ``fooled``
  (contains the falsified one), ``says_conflict`` (says the sources disagree).

Latency per question: time to first token and whole answer (p50/p95), measured in this process, one
question at a time. Rows are appended to ``<out>/<generator>/<set>.jsonl`` as they finish, so an
interrupted run resumes where it stopped.

Run: ``python -m eval.generator_choice --out eval/results/generator-choice`` (all four bundled models; see
the README, "Choosing the offline generator", for the time it takes).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answering import finish_answer, needs_example
from assistant.config import Settings
from assistant.compression import ContextCompressor
from assistant.models.registry import create_embedder, create_generator
from assistant.prompts import STOP, build_messages
from assistant.types import Hit, Trace
from eval.compare import paired_randomisation_p
from eval.metrics import (
    abstention_scores,
    best_over_golds,
    contains_answer,
    exact_match,
    mentions_conflict,
    strip_citations,
    token_f1,
)

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
DEFAULT_SQUAD = DEV / "squad" / "dev-v2.0.rebuilt.json"
DEFAULT_HOTPOT = DEV / "hotpotqa-musique" / "hotpotqa_train.json"
DEFAULT_RGB = DEV / "rgb" / "en_fact.json"
DEFAULT_NEAR_TOPIC = Path(__file__).resolve().parent / "near_topic_unanswerables.jsonl"
PASSAGES = 4
GENERATORS = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]


# -- samples ---------------------------------------------------------------------------------------
# Each item: {id, question, answers, title, contexts: [(title, text)], and set-specific fields}.


def squad_items(path: Path, n: int, seed: int, distractors: int = PASSAGES - 1) -> list[dict[str, Any]]:
    """``n`` SQuAD questions, each with its gold paragraph among ``distractors`` others of the same article."""
    data = json.loads(path.read_text())["data"]
    rng = random.Random(seed)
    pool = [(a, p, q) for a in data for p in a["paragraphs"] for q in p["qas"]]
    items = []
    for article, paragraph, qa in rng.sample(pool, n):
        title = article["title"].replace("_", " ")
        others = [p["context"] for p in article["paragraphs"] if p is not paragraph]
        contexts = rng.sample(others, min(distractors, len(others))) + [paragraph["context"]]
        rng.shuffle(contexts)
        items.append(
            {
                "id": qa["id"],
                "question": qa["question"],
                "answers": sorted({a["text"] for a in qa["answers"]}),
                "contexts": [(title, c) for c in contexts],
            }
        )
    return items


def hotpot_items(path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` HotpotQA questions with their two supporting paragraphs and two of their distractors."""
    rows = json.loads(path.read_text())
    rng = random.Random(seed)
    items = []
    for row in rng.sample(rows, min(n, len(rows))):
        paragraphs = {title: " ".join(sentences) for title, sentences in row["context"]}
        gold = list(dict.fromkeys(title for title, _ in row["supporting_facts"]))
        others = [t for t in paragraphs if t not in gold]
        titles = gold + rng.sample(others, min(PASSAGES - len(gold), len(others)))
        rng.shuffle(titles)
        items.append(
            {
                "id": row["_id"],
                "question": row["question"],
                "answers": [row["answer"]],
                "contexts": [(t, paragraphs[t]) for t in titles],
            }
        )
    return items


def rgb_items(path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` RGB counterfactual questions: two true passages, one falsified, one noise (as available)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    items = []
    for row in rng.sample(rows, min(n, len(rows))):
        true = rng.sample(row["positive"], min(2, len(row["positive"])))
        false = rng.sample(row["positive_wrong"], min(1, len(row["positive_wrong"])))
        noise = rng.sample(row["negative"], min(PASSAGES - len(true) - len(false), len(row["negative"])))
        contexts = [("true", t) for t in true] + [("false", t) for t in false] + [("noise", t) for t in noise]
        rng.shuffle(contexts)
        answer = row["answer"]
        parts = [[a] if isinstance(a, str) else list(a) for a in (answer if isinstance(answer, list) else [answer])]
        items.append(
            {
                "id": str(row["id"]),
                "question": row["query"],
                "answers": [a for part in parts for a in part],
                "parts": parts,
                "fake": row["fakeanswer"],
                "kinds": [kind for kind, _ in contexts],
                # Titles are not shown as "true"/"false": every RGB passage is titled by its query.
                "contexts": [(row["query"], text) for _, text in contexts],
            }
        )
    return items


def near_topic_items(path: Path, n: int, seed: int, squad: Path = DEFAULT_SQUAD) -> list[dict[str, Any]]:
    """Hand-written questions about an entity a SQuAD paragraph discusses, asking what no paragraph of its
    article says (``eval/near_topic_unanswerables.jsonl``: title + paragraph index, no copied text). Each is
    shown with its paragraph and three others of the article; the right behaviour is to abstain."""
    articles = {a["title"]: a["paragraphs"] for a in json.loads(squad.read_text())["data"]}
    rng = random.Random(seed)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:n]
    items = []
    for row in rows:
        paragraphs = [p["context"] for p in articles[row["title"]]]
        own = paragraphs[row["paragraph"]]
        others = rng.sample([p for i, p in enumerate(paragraphs) if i != row["paragraph"]], min(PASSAGES - 1, len(paragraphs) - 1))
        contexts = [own, *others]
        rng.shuffle(contexts)
        title = row["title"].replace("_", " ")
        items.append({"id": row["id"], "question": row["question"], "answers": [], "contexts": [(title, c) for c in contexts]})
    return items


# -- answering and scoring ---------------------------------------------------------------------------


def item_hits(item: dict[str, Any]) -> list[Hit]:
    """The item's passages as the `Hit`s the prompt numbers from 1."""
    return [Hit(f"{item['id']}:{i}", text, 1.0, title, f"p{i}", title, title) for i, (title, text) in enumerate(item["contexts"])]


def finished_fields(raw: str, hits: list[Hit], question: str) -> dict[str, Any]:
    """What Tessera's answer post-processing makes of the generated text (default settings): shown text,
    scored prediction, and whether it is shown as supported (cited, no sentence flagged)."""
    finished = finish_answer(raw, hits, Trace(), question=question)
    prediction = "" if finished.abstained else strip_citations(finished.text)
    supported = not finished.abstained and bool(finished.citations) and not finished.unsupported
    return {"text": finished.text, "prediction": prediction, "abstained": finished.abstained, "supported": supported}


def answer(
    item: dict[str, Any], generator: Any, max_new_tokens: int, compressor: ContextCompressor | None = None
) -> dict[str, Any]:
    """Streams one answer; returns the finished `Answer` fields with time to first token and total time.

    With a ``compressor`` (``--set context.budget_words=N``) the model reads the compressed passages; the
    compression's time counts in both latencies, and the answer is checked against the whole passages.
    """
    hits = item_hits(item)
    began = time.perf_counter()
    shown = compressor.compress(item["question"], hits) if compressor else hits
    messages = build_messages(item["question"], shown, example=needs_example(generator))
    first, pieces = None, []
    for piece in generator.stream(messages, max_new_tokens=max_new_tokens, stop=STOP):
        if first is None:
            first = time.perf_counter() - began
        pieces.append(piece)
    seconds = time.perf_counter() - began
    raw = "".join(pieces)
    return {
        "id": item["id"],
        "raw": raw,
        **finished_fields(raw, hits, item["question"]),
        "prompt_words": sum(len(h.text.split()) for h in shown),
        "ttft": round(first if first is not None else seconds, 3),
        "seconds": round(seconds, 3),
    }


def score_squad(item: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    golds = item["answers"] or [""]
    return {
        "answerable": bool(item["answers"]),
        "em": best_over_golds(exact_match, row["prediction"], golds),
        "f1": best_over_golds(token_f1, row["prediction"], golds),
    }


def score_hotpot(item: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {
        "em": best_over_golds(exact_match, row["prediction"], item["answers"]),
        "f1": best_over_golds(token_f1, row["prediction"], item["answers"]),
    }


def score_rgb(item: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {
        "correct": float(contains_answer(row["prediction"], item["parts"])),
        "fooled": float(contains_answer(row["prediction"], [[item["fake"]]])),
        "says_conflict": float(mentions_conflict(row["text"])),
    }


def score_near_topic(item: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return {"abstained_right": float(row["abstained"]), "hallucinated": float(row.get("supported", False))}


SETS: dict[str, tuple[Callable[..., list[dict[str, Any]]], Callable[..., dict[str, Any]]]] = {
    "squad-v2": (squad_items, score_squad),
    "hotpotqa": (hotpot_items, score_hotpot),
    "rgb": (rgb_items, score_rgb),
    "near-topic": (near_topic_items, score_near_topic),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2) if ordered else float("nan")


def summarise(set_name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The table's cells for one generator on one set (percentages for EM/F1, shares for the rest)."""
    mean = lambda xs: round(100 * statistics.fmean(xs), 1) if xs else float("nan")  # noqa: E731
    out: dict[str, Any] = {
        "n": len(rows),
        "seconds_p50": percentile([r["seconds"] for r in rows], 0.5),
        "seconds_p95": percentile([r["seconds"] for r in rows], 0.95),
        "ttft_p50": percentile([r["ttft"] for r in rows], 0.5),
    }
    if set_name in ("squad-v2", "hotpotqa"):
        out.update(em=mean([r["em"] for r in rows]), f1=mean([r["f1"] for r in rows]))
    if set_name == "squad-v2":
        scores = abstention_scores([r["abstained"] for r in rows], [r["answerable"] for r in rows])
        out.update({f"abstain_{k}": (round(v, 2) if v is not None else None) for k, v in scores.items()})
        out["f1_answerable"] = mean([r["f1"] for r in rows if r["answerable"]])
    if set_name in ("squad-v2", "near-topic"):
        unanswerable = [r for r in rows if not r.get("answerable", False)]
        # Answered an unanswerable question and shown it as supported (cited, no sentence flagged).
        out["hallucinated"] = round(statistics.fmean(r["supported"] for r in unanswerable), 2) if unanswerable else None
    if set_name == "near-topic":
        out["abstained"] = round(statistics.fmean(r["abstained"] for r in rows), 2) if rows else None
    if set_name == "rgb":
        for key in ("correct", "fooled", "says_conflict"):
            out[key] = round(statistics.fmean(r[key] for r in rows), 2) if rows else float("nan")
    return out


def run_set(
    set_name: str,
    items: list[dict[str, Any]],
    generator: Any | None,
    out: Path,
    max_new_tokens: int,
    compressor: ContextCompressor | None = None,
) -> list[dict[str, Any]]:
    """Answers the items not yet in ``out`` (appending each row), then returns the rows in item order.

    With ``generator=None`` nothing is generated: the rows already written are returned (an interrupted run
    summarised as far as it got, always a prefix of the same seeded sample). Rows already written are
    post-processed and scored again from their raw text (decoding is greedy, so the text is what the model
    would write again): a change to the answer post-processing applies to every row without regenerating.
    """
    _, scorer = SETS[set_name]
    done = {}
    if out.exists():
        done = {r["id"]: r for r in map(json.loads, out.read_text().splitlines()) if r}
    for item in items:
        if item["id"] in done:
            row = done[item["id"]]
            row.update(finished_fields(row["raw"], item_hits(item), item["question"]))
            row.update(scorer(item, row))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as sink:
        for i, item in enumerate(items, 1):
            if item["id"] in done:
                continue
            if generator is None:
                break
            row = answer(item, generator, max_new_tokens, compressor)
            row.update(scorer(item, row))
            done[item["id"]] = row
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            print(f"{generator.name} {set_name} {i}/{len(items)} {row['seconds']:.1f}s {row['prediction'][:60]!r}", flush=True)
    return [done[item["id"]] for item in items if item["id"] in done]


# The per-question score a paired comparison uses on each set.
PAIRED_METRIC = {"squad-v2": "f1", "hotpotqa": "f1", "rgb": "correct", "near-topic": "hallucinated"}


def paired_comparison(rows: list[dict[str, Any]], baseline: list[dict[str, Any]], set_name: str) -> dict[str, Any]:
    """This run against a baseline run on the questions both answered: mean of each, the difference and
    its paired randomisation p-value (on SQuAD also abstention F1 and whole-answer seconds p50 of each)."""
    key = PAIRED_METRIC[set_name]
    before = {r["id"]: r for r in baseline}
    pairs = [(before[r["id"]], r) for r in rows if r["id"] in before]
    if not pairs:
        return {"n": 0}
    a = np.array([float(b[key]) for b, _ in pairs])
    b = np.array([float(r[key]) for _, r in pairs])
    scale = 100 if key == "f1" else 1
    out = {
        "n": len(pairs),
        "metric": key,
        "baseline": round(scale * a.mean(), 2),
        "this": round(scale * b.mean(), 2),
        "delta": round(scale * (b.mean() - a.mean()), 2),
        "p": round(paired_randomisation_p(a, b), 4),
        "seconds_p50": [percentile([x["seconds"] for x, _ in pairs], 0.5), percentile([x["seconds"] for _, x in pairs], 0.5)],
    }
    if set_name == "squad-v2":
        for name, side in (("baseline", [x for x, _ in pairs]), ("this", [x for _, x in pairs])):
            f1 = abstention_scores([r["abstained"] for r in side], [r["answerable"] for r in side])["f1"]
            out[f"abstain_f1_{name}"] = round(f1, 2) if f1 is not None else None
    return out


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The README's markdown table: one row per generator."""
    lines = [
        "| generator | SQuAD v2.0 EM / F1 | abstention P / R / F1 | hallucinated (SQuAD / near-topic) | HotpotQA EM / F1 "
        "| RGB correct / fooled / says conflict | answer s p50 / p95 | first token s p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, sets in results.items():
        squad, hotpot, rgb, near = (sets.get(k, {}) for k in ("squad-v2", "hotpotqa", "rgb", "near-topic"))
        every = [r for s in sets.values() for r in s.get("rows", [])]
        lines.append(
            f"| {name} | {squad.get('em')} / {squad.get('f1')} | {squad.get('abstain_precision')} / "
            f"{squad.get('abstain_recall')} / {squad.get('abstain_f1')} | {squad.get('hallucinated')} / {near.get('hallucinated')} | "
            f"{hotpot.get('em')} / {hotpot.get('f1')} | {rgb.get('correct')} / {rgb.get('fooled')} / {rgb.get('says_conflict')} | "
            f"{percentile([r['seconds'] for r in every], 0.5)} / {percentile([r['seconds'] for r in every], 0.95)} | "
            f"{percentile([r['ttft'] for r in every], 0.5)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", default=GENERATORS)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    parser.add_argument("--hotpot", type=Path, default=DEFAULT_HOTPOT)
    parser.add_argument("--rgb", type=Path, default=DEFAULT_RGB)
    parser.add_argument("--near-topic", type=Path, default=DEFAULT_NEAR_TOPIC)
    parser.add_argument("--squad-n", type=int, default=200)
    parser.add_argument("--hotpot-n", type=int, default=100)
    parser.add_argument("--rgb-n", type=int, default=100)
    parser.add_argument("--near-topic-n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="a setting, e.g. models.runtime=transformers")
    parser.add_argument("--out", type=Path, default=Path("eval/results/generator-choice"))
    parser.add_argument("--summarise-only", action="store_true", help="tabulate the rows written so far; generate nothing")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another run's --out: paired comparison per generator and set (e.g. whole vs compressed passages)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="answer only the first N questions of each set's sample (a prefix of the same sample)"
    )
    args = parser.parse_args()

    from assistant.config import parse_overrides

    settings = Settings(**parse_overrides(args.overrides))
    sources = {"squad-v2": args.squad, "hotpotqa": args.hotpot, "rgb": args.rgb, "near-topic": args.near_topic}
    sizes = {"squad-v2": args.squad_n, "hotpotqa": args.hotpot_n, "rgb": args.rgb_n, "near-topic": args.near_topic_n}
    samples = {s: SETS[s][0](sources[s], sizes[s], args.seed)[: args.limit] for s in args.sets}
    compressor = None
    if settings.context.budget_words and not args.summarise_only:
        compressor = ContextCompressor(create_embedder(settings), settings.context.budget_words)
        compressor.embedder.embed(["warm up"])  # load outside the timing
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in args.generators:
        generator = None
        if not args.summarise_only:
            generator = create_generator(settings, name)
            generator.generate(build_messages("warm up?", []), max_new_tokens=1)  # load outside the timing
        results[name] = {}
        for set_name in args.sets:
            out = args.out / name / f"{set_name}.jsonl"
            rows = run_set(set_name, samples[set_name], generator, out, settings.models.max_new_tokens, compressor)
            results[name][set_name] = {**summarise(set_name, rows), "rows": rows}
            print(name, set_name, json.dumps(summarise(set_name, rows)), flush=True)
    if args.baseline is not None:
        for name, sets in results.items():
            for set_name, result in sets.items():
                path = args.baseline / name / f"{set_name}.jsonl"
                if path.exists():
                    baseline = run_set(set_name, samples[set_name], None, path, settings.models.max_new_tokens)
                    result["paired"] = paired_comparison(result["rows"], baseline, set_name)
                    print(name, set_name, "vs", args.baseline, json.dumps(result["paired"]), flush=True)
    summary = {n: {s: {k: v for k, v in r.items() if k != "rows"} for s, r in sets.items()} for n, sets in results.items()}
    (args.out / "summary.json").write_text(json.dumps({"settings": settings.model_dump(mode="json"), "results": summary}, indent=2))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
