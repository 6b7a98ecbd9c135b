"""Does the support check (`assistant.support`) tell supported answer sentences from unsupported ones?

Part 1 — labelled claims built from the dev data, no model needed (``kind``: label):

- ``squad.copied`` (supported): the sentence of a SQuAD v2.0 gold paragraph that holds the gold answer.
- ``squad.answer`` (supported): the gold answer alone, the question given as premise (how short answers look).
- ``squad.swapped`` / ``squad.swapped_answer`` (unsupported): the same, the answer replaced by another
  question's answer of the same kind (a number for a number, else a name) from another article.
- ``rgb.true`` (supported): RGB's sentence holding the true answer, against its passage.
- ``rgb.falsified`` (unsupported): that sentence against its falsified twin (the passage with the answer
  swapped for the fake one). ``rgb.fake`` (unsupported): the falsified sentence against the true passage.
- ``model.correct`` (supported, with ``--answers``): answers the bundled models wrote in an
  `eval.generator_choice` run that contain one of SQuAD's gold answers: the sentence stating it, after
  Tessera's post-processing, checked as Tessera checks it (against the sources it cites, else all four). The only supported claims not copied from a
  passage: the ones that show what paraphrase costs.

For each coverage threshold and window: precision / recall / F1 of "supported", recall of "unsupported",
balanced accuracy, and each kind's pass rate. The chosen setting maximises balanced accuracy (ties: the
one that flags fewer supported claims, then the lower threshold, then the larger window).

Part 2 — what the answer policy does (``--answers``): the SQuAD v2.0 rows of each generator re-post-processed
with ``answer.unsupported`` = ``warn`` and = ``abstain``: abstention P/R/F1, answerable F1, and the
**hallucinated-answer rate** — unanswerable questions answered and shown as supported (cited, no sentence
flagged) — against the old post-processing's (every uncited answer attributed by word overlap, shown cited).

Part 3 (``--verifier NAME``): the same claims judged by a local model ("Does the passage state the claim?
yes or no"), half supported, half not: is it capable enough to verify, and at what cost per sentence?

Run: ``python -m eval.support_study --answers runs/generator-choice --out runs/support-study``
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

from assistant.answering import finish_answer, is_abstention, unquote_header
from assistant.config import Settings
from assistant.citations import strip_invalid
from assistant.prompts import clean_answer
from assistant.support import SupportChecker, sentences
from assistant.types import Hit, Trace
from eval.generator_choice import DEFAULT_RGB, DEFAULT_SQUAD, SETS, item_hits
from eval.metrics import abstention_scores, best_over_golds, contains_answer, strip_citations, token_f1

COVERAGES = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
WINDOWS = [1, 2, 3]
_NUMBERISH = re.compile(r"\d")


# -- part 1: labelled claims -------------------------------------------------------------------------


def _hit(text: str, title: str = "") -> Hit:
    return Hit("p", text, 1.0, title, "p", "d", title)


def _sentence_at(text: str, start: int) -> str | None:
    """The sentence of ``text`` holding character ``start``."""
    position = 0
    for sentence in sentences(text):
        found = text.find(sentence, position)
        if found <= start < found + len(sentence):
            return sentence
        position = max(position, found + len(sentence))
    return None


def squad_claims(path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """Copied and answer-only claims of ``n`` answerable SQuAD v2.0 questions, and their swapped twins."""
    data = json.loads(path.read_text())["data"]
    rng = random.Random(seed)
    pool = [(a["title"], p, q) for a in data for p in a["paragraphs"] for q in p["qas"] if q["answers"]]
    claims = []
    for title, paragraph, qa in rng.sample(pool, min(n, len(pool))):
        answer = qa["answers"][0]
        context = paragraph["context"]
        copied = _sentence_at(context, answer["answer_start"])
        numeric = bool(_NUMBERISH.search(answer["text"]))
        # Another article's answer of the same kind, absent from this paragraph.
        for _ in range(100):
            other_title, _, other = rng.choice(pool)
            swap = other["answers"][0]["text"]
            if other_title != title and bool(_NUMBERISH.search(swap)) == numeric and swap.lower() not in context.lower():
                break
        hits = [_hit(context, title)]
        base = {"question": qa["question"], "hits": hits}
        claims.append({**base, "kind": "squad.answer", "claim": answer["text"], "label": True})
        claims.append({**base, "kind": "squad.swapped_answer", "claim": swap, "label": False})
        if copied and answer["text"] in copied:
            claims.append({**base, "kind": "squad.copied", "claim": copied, "label": True})
            claims.append({**base, "kind": "squad.swapped", "claim": copied.replace(answer["text"], swap), "label": False})
    return claims


def rgb_passage_pairs(path: Path) -> list[list[dict[str, str]]]:
    """Per RGB question, its true / falsified passage pairs in which the true passage holds an answer and its
    twin the fake one, with the sentence around each (``question``, ``true``, ``false``, ``true_sentence``,
    ``fake_sentence``)."""
    questions = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        answers = [a for group in answers for a in (group if isinstance(group, list) else [group])]
        pairs = []
        for true, false in zip(row["positive"], row["positive_wrong"]):
            true_answer = next((a for a in answers if a in true), None)
            if true_answer is None or row["fakeanswer"] not in false:
                continue
            pairs.append({"question": row["query"], "true": true, "false": false,
                          "true_sentence": _sentence_at(true, true.index(true_answer)),
                          "fake_sentence": _sentence_at(false, false.index(row["fakeanswer"]))})
        questions.append(pairs)
    return questions


def rgb_claims(path: Path) -> list[dict[str, Any]]:
    """True, falsified and fake claims from RGB's parallel true / falsified passages."""
    claims = []
    for pairs in rgb_passage_pairs(path):
        # one passage pair per question: the set stays balanced across questions
        pair = next((p for p in pairs if p["true_sentence"] and p["fake_sentence"]), None)
        if pair is None:
            continue
        base = {"question": pair["question"]}
        claims.append({**base, "kind": "rgb.true", "claim": pair["true_sentence"], "hits": [_hit(pair["true"])], "label": True})
        claims.append({**base, "kind": "rgb.falsified", "claim": pair["true_sentence"], "hits": [_hit(pair["false"])], "label": False})
        claims.append({**base, "kind": "rgb.fake", "claim": pair["fake_sentence"], "hits": [_hit(pair["true"])], "label": False})
    return claims


def model_claims(answers: Path) -> list[dict[str, Any]]:
    """Correct SQuAD answers (containing a gold answer) the generators wrote in an `eval.generator_choice` run."""
    items = {item["id"]: item for item in SETS["squad-v2"][0](DEFAULT_SQUAD, 200, 0)}
    claims = []
    for rows_file in sorted(answers.glob("*/squad-v2.jsonl")):
        for row in map(json.loads, rows_file.read_text().splitlines()):
            item = items.get(row["id"])
            if not item or not item["answers"] or is_abstention(row["raw"]):
                continue
            hits = item_hits(item)
            text = strip_invalid(unquote_header(clean_answer(row["raw"]), hits), len(hits))[0]
            # The sentence that states the gold answer is labelled; the model's other sentences are not.
            main = next((s for s in sentences(text) if contains_answer(strip_citations(s), [item["answers"]])), None)
            if main:
                claims.append({"kind": "model.correct", "claim": main, "hits": hits, "question": item["question"], "label": True})
    return claims


def verdict(checker: SupportChecker, claim: dict[str, Any]) -> bool:
    """Whether every sentence of the claim passes, as `finish_answer` would judge it."""
    return all(v.supported for v in checker.check(claim["claim"], claim["hits"], claim["question"]))


def grid(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scores of every (coverage, window) setting over the labelled claims."""
    rows = []
    for window in WINDOWS:
        for coverage in COVERAGES:
            checker = SupportChecker(coverage, window)
            said = [verdict(checker, c) for c in claims]
            labels = [c["label"] for c in claims]
            tp = sum(s and l for s, l in zip(said, labels))
            fp = sum(s and not l for s, l in zip(said, labels))
            fn = sum(l and not s for s, l in zip(said, labels))
            tn = sum(not s and not l for s, l in zip(said, labels))
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            kinds = sorted({c["kind"] for c in claims})
            rows.append(
                {
                    "coverage": coverage,
                    "window": window,
                    "precision": round(precision, 3),
                    "recall": round(recall, 3),
                    "f1": round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0,
                    "unsupported_recall": round(tn / (tn + fp), 3) if tn + fp else 0.0,
                    "balanced_accuracy": round((recall + (tn / (tn + fp) if tn + fp else 0.0)) / 2, 3),
                    "passed": {
                        k: round(statistics.fmean(s for s, c in zip(said, claims) if c["kind"] == k), 3) for k in kinds
                    },
                }
            )
    return rows


VERIFY_PROMPT = (
    "Passage: {passage}\n\nClaim: {claim}\n\nDoes the passage state the claim? Consider only what the passage "
    "says. Answer with one word, yes or no."
)


def model_verifier(claims: list[dict[str, Any]], generator: Any, n: int, seed: int) -> dict[str, Any]:
    """Asks a generator to judge ``n`` claims (half supported, half not, seeded): accuracy, precision and recall
    of its "yes", unparseable replies, and seconds per judgement — is the local model a capable verifier?"""
    from assistant.models.base import Message

    rng = random.Random(seed)
    positives = [c for c in claims if c["label"]]
    negatives = [c for c in claims if not c["label"]]
    chosen = rng.sample(positives, min(n // 2, len(positives))) + rng.sample(negatives, min(n // 2, len(negatives)))
    said, labels, unparsed, seconds = [], [], 0, []
    for claim in chosen:
        passage = " ".join(h.text for h in claim["hits"])[:2000]
        prompt = VERIFY_PROMPT.format(passage=passage, claim=claim["claim"])
        began = time.perf_counter()
        reply = generator.generate([Message("user", prompt)], max_new_tokens=4).strip().lower()
        seconds.append(time.perf_counter() - began)
        yes, no = reply.startswith("yes"), reply.startswith("no")
        unparsed += not (yes or no)
        said.append(yes)
        labels.append(claim["label"])
    tp = sum(s and l for s, l in zip(said, labels))
    fp = sum(s and not l for s, l in zip(said, labels))
    fn = sum(l and not s for s, l in zip(said, labels))
    return {
        "n": len(chosen),
        "accuracy": round(sum(s == l for s, l in zip(said, labels)) / len(chosen), 3) if chosen else None,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
        "unparsed": unparsed,
        "seconds_p50": round(statistics.median(seconds), 2) if seconds else None,
    }


# -- part 2: the answer policy -----------------------------------------------------------------------


def _legacy_shown_supported(raw: str, hits: list[Hit]) -> bool:
    """Before the support check, every non-abstaining answer was shown with a citation: the model's, or
    the source sharing most words with it (so, on real passages, practically always)."""
    return not is_abstention(raw)


def policy(answers: Path, coverage: float, window: int) -> dict[str, Any]:
    """Per generator: SQuAD v2.0 abstention, answerable F1 and hallucinated-answer rate, old vs warn vs abstain."""
    items = {item["id"]: item for item in SETS["squad-v2"][0](DEFAULT_SQUAD, 200, 0)}
    checker = SupportChecker(coverage, window)
    out: dict[str, Any] = {}
    for rows_file in sorted(answers.glob("*/squad-v2.jsonl")):
        rows = [r for r in map(json.loads, rows_file.read_text().splitlines()) if r["id"] in items]
        result = {"n": len(rows), "unanswerable": sum(not items[r["id"]]["answers"] for r in rows)}
        for mode in ("old", "warn", "abstain"):
            abstained, answerable, f1s, shown_supported = [], [], [], []
            for row in rows:
                item = items[row["id"]]
                hits = item_hits(item)
                if mode == "old":
                    gave_up = is_abstention(row["raw"])
                    prediction = "" if gave_up else strip_citations(row["raw"])
                    supported = _legacy_shown_supported(row["raw"], hits)
                else:
                    answer = finish_answer(row["raw"], hits, Trace(), question=item["question"], checker=checker, on_unsupported=mode)
                    gave_up = answer.abstained
                    prediction = "" if gave_up else strip_citations(answer.text)
                    supported = not gave_up and bool(answer.citations) and not answer.unsupported
                abstained.append(gave_up)
                answerable.append(bool(item["answers"]))
                if item["answers"]:
                    f1s.append(best_over_golds(token_f1, prediction, item["answers"]))
                else:
                    shown_supported.append(supported)
            scores = abstention_scores(abstained, answerable)
            result[mode] = {
                **{f"abstain_{k}": (round(v, 3) if v is not None else None) for k, v in scores.items()},
                "answerable_f1": round(100 * statistics.fmean(f1s), 1) if f1s else None,
                "hallucinated_rate": round(statistics.fmean(shown_supported), 3) if shown_supported else None,
            }
        out[rows_file.parent.name] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    parser.add_argument("--rgb", type=Path, default=DEFAULT_RGB)
    parser.add_argument("--squad-n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--answers", type=Path, default=None, help="an eval.generator_choice output folder")
    parser.add_argument("--out", type=Path, default=Path("runs/support-study"))
    parser.add_argument("--verifier", default=None, help="also ask this generator to judge claims (e.g. qwen2.5-coder-0.5b)")
    parser.add_argument("--verifier-n", type=int, default=60)
    args = parser.parse_args()

    claims = squad_claims(args.squad, args.squad_n, args.seed) + rgb_claims(args.rgb)
    if args.answers:
        claims += model_claims(args.answers)
    counts = {k: sum(c["kind"] == k for c in claims) for k in sorted({c["kind"] for c in claims})}
    rows = grid(claims)
    best = max(rows, key=lambda r: (r["balanced_accuracy"], r["recall"], -r["coverage"], r["window"]))
    report: dict[str, Any] = {"claims": counts, "grid": rows, "chosen": best}
    if args.answers:
        report["policy"] = policy(args.answers, best["coverage"], best["window"])
    if args.verifier:
        from assistant.models.registry import create_generator

        report["verifier"] = {args.verifier: model_verifier(claims, create_generator(Settings(), args.verifier), args.verifier_n, args.seed)}
        print("verifier:", json.dumps(report["verifier"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "support-study.json").write_text(json.dumps(report, indent=2))

    print("claims:", json.dumps(counts))
    print("| coverage | window | supported P / R / F1 | unsupported recall | balanced acc. |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['coverage']} | {r['window']} | {r['precision']} / {r['recall']} / {r['f1']} | {r['unsupported_recall']} | {r['balanced_accuracy']} |")
    print("chosen:", json.dumps(best))
    for name, result in report.get("policy", {}).items():
        print(name, json.dumps(result))


if __name__ == "__main__":
    main()
