"""Which bundled generator answers best? SQuAD v2.0 reading comprehension with distractors.

Each sampled question gets its gold paragraph plus distractor paragraphs from the same article (so they
share its topic) in a seeded random order, goes through Tessera's own prompt and answer post-processing
(`finish_answer`), and is scored by SQuAD's exact match and token F1. Unanswerable questions (empty gold)
count as right when the model abstains.

Run: ``python -m eval.generator_choice --n 100 --seed 0`` (about 5 minutes for both models here).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from assistant.assistant import finish_answer, needs_example
from assistant.config import Settings
from assistant.models.registry import create_generator
from assistant.prompts import STOP, build_messages
from assistant.types import Hit, Trace
from eval.metrics import best_over_golds, exact_match, strip_citations, token_f1

DEFAULT_SQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "squad" / "dev-v2.0.rebuilt.json"


def sample_items(path: Path, n: int, seed: int, distractors: int) -> list[dict[str, Any]]:
    """``n`` questions, each with its gold paragraph among ``distractors`` others of the same article."""
    data = json.loads(path.read_text())["data"]
    rng = random.Random(seed)
    pool = [(a, p, q) for a in data for p in a["paragraphs"] for q in p["qas"]]
    items = []
    for article, paragraph, qa in rng.sample(pool, n):
        others = [p["context"] for p in article["paragraphs"] if p is not paragraph]
        contexts = rng.sample(others, min(distractors, len(others))) + [paragraph["context"]]
        rng.shuffle(contexts)
        items.append(
            {
                "id": qa["id"],
                "question": qa["question"],
                "answers": sorted({a["text"] for a in qa["answers"]}),
                "title": article["title"].replace("_", " "),
                "contexts": contexts,
            }
        )
    return items


def score(item: dict[str, Any], generator: Any, settings: Settings) -> dict[str, Any]:
    hits = [
        Hit(f"{item['id']}:{i}", text, 1.0, item["title"], f"p{i}", item["title"], item["title"])
        for i, text in enumerate(item["contexts"])
    ]
    trace = Trace()
    began = time.perf_counter()
    raw = generator.generate(
        build_messages(item["question"], hits, example=needs_example(generator)),
        max_new_tokens=settings.models.max_new_tokens, stop=STOP)
    seconds = time.perf_counter() - began
    answer = finish_answer(raw, hits, trace)
    prediction = "" if answer.abstained else strip_citations(answer.text)
    golds = item["answers"] or [""]
    return {
        "id": item["id"],
        "answerable": bool(item["answers"]),
        "prediction": prediction,
        "raw": raw,
        "abstained": answer.abstained,
        "em": best_over_golds(exact_match, prediction, golds),
        "f1": best_over_golds(token_f1, prediction, golds),
        "seconds": seconds,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    mean = lambda xs: round(100 * statistics.fmean(xs), 1) if xs else float("nan")  # noqa: E731
    return {
        "n": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "em_all": mean([r["em"] for r in rows]),
        "f1_all": mean([r["f1"] for r in rows]),
        "em_answerable": mean([r["em"] for r in answerable]),
        "f1_answerable": mean([r["f1"] for r in answerable]),
        "abstain_on_unanswerable": mean([r["abstained"] for r in unanswerable]),
        "abstain_on_answerable": mean([r["abstained"] for r in answerable]),
        "seconds_p50": round(statistics.median(r["seconds"] for r in rows), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distractors", type=int, default=4)
    parser.add_argument("--generators", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--home", type=Path, default=None, help="Tessera home (for the model cache)")
    parser.add_argument("--out", type=Path, default=Path("eval/results/generator_choice.json"))
    args = parser.parse_args()

    settings = Settings(**({"home": str(args.home)} if args.home else {}))
    items = sample_items(args.squad, args.n, args.seed, args.distractors)
    results: dict[str, Any] = {"n": args.n, "seed": args.seed, "distractors": args.distractors, "models": {}}
    for name in args.generators:
        generator = create_generator(settings, name)
        generator.generate(build_messages("warm up?", []), max_new_tokens=1)  # load outside the timing
        rows = [score(item, generator, settings) for item in items]
        results["models"][name] = {"summary": summarise(rows), "rows": rows}
        print(name, json.dumps(results["models"][name]["summary"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print("\n| generator | EM (all) | F1 (all) | EM answerable | F1 answerable | abstains on unanswerable | abstains on answerable | s/question (p50) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, res in results["models"].items():
        s = res["summary"]
        print(
            f"| {name} | {s['em_all']} | {s['f1_all']} | {s['em_answerable']} | {s['f1_answerable']} | "
            f"{s['abstain_on_unanswerable']} | {s['abstain_on_answerable']} | {s['seconds_p50']} |"
        )


if __name__ == "__main__":
    main()
