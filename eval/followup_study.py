"""Do follow-up questions stay on topic? Retrieval of conversational follow-ups built from HotpotQA.

**Follow-ups.** HotpotQA questions that name exactly one of their two supporting articles by its title
("Who directed the film Big Stone Gap?"). The conversation so far is one exchange about that article
("Tell me about Big Stone Gap." → the article's first sentence); the follow-up is the question with the title
replaced by "it". Both supporting articles are the evidence. **Topic changes**: a question that stands alone
asked after an exchange about an unrelated article.

Each follow-up is retrieved four ways, at document level over the union of the sampled questions' ten
paragraphs (HotpotQA's distractor setting), default settings otherwise:

- ``original``: the HotpotQA question itself, no conversation (the ceiling);
- ``follow-up``: the follow-up alone, no rewriting (the floor);
- ``rewrite``: the model's first rewrite alone, guards or not (what rewriting did before: it replaced the
  question; the follow-up itself when the reply had no usable line);
- ``fused``: what Tessera does — the kept rewrites and the follow-up itself, fused.

Topic changes are retrieved with and without the unrelated conversation; with the stands-alone check they
should not be rewritten at all. Reported: recall@5 and @10 (both supporting articles), how often a
rewrite was kept / discarded (and why) / skipped, and seconds per rewrite.

Run: ``python -m eval.followup_study --out runs/followup`` (``--set query.generator=NAME`` for another
rewriting model).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from assistant.assistant import Assistant
from assistant.config import Settings, parse_overrides
from assistant.types import Document, Exchange, Trace
from eval.metrics import recall_at_k
from retrievers.llm_step import Malformed
from retrievers.rewrite import parse_rewrites

DEFAULT_HOTPOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "hotpotqa-musique" / "hotpotqa_train.json"


def build(path: Path, n: int, topic_changes: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """``n`` follow-ups, ``topic_changes`` standalone questions after an unrelated exchange, and the corpus."""
    rows = json.loads(path.read_text())
    rng = random.Random(seed)
    rng.shuffle(rows)
    corpus: dict[str, str] = {}
    follow_ups, changes = [], []
    for row in rows:
        paragraphs = {title: " ".join(sentences) for title, sentences in row["context"]}
        gold = list(dict.fromkeys(t for t, _ in row["supporting_facts"]))
        named = [t for t in gold if len(t) >= 4 and re.search(rf"\b{re.escape(t)}\b", row["question"], re.IGNORECASE)]
        if len(follow_ups) < n and len(named) == 1:
            title = named[0]
            follow_ups.append(
                {
                    "id": row["_id"],
                    "original": row["question"],
                    "question": re.sub(rf"\b{re.escape(title)}\b", "it", row["question"], count=1, flags=re.IGNORECASE),
                    "history": [(f"Tell me about {title}.", row["context"][[t for t, _ in row["context"]].index(title)][1][0])],
                    "evidence": gold,
                }
            )
        elif len(changes) < topic_changes and not named:
            changes.append({"id": row["_id"], "question": row["question"], "evidence": gold})
        else:
            continue
        corpus.update(paragraphs)
        if len(follow_ups) >= n and len(changes) >= topic_changes:
            break
    # A topic change follows an exchange about some other question's article.
    for i, item in enumerate(changes):
        other = follow_ups[i % len(follow_ups)]
        item["history"] = other["history"]
    return follow_ups, changes, corpus


def index(assistant: Assistant, settings: Settings, corpus: dict[str, str]) -> None:
    """Indexes the corpus (one document per article, id = title) in the assistant's store."""
    from ingestion.docstore import DocStore
    from ingestion.pipeline import Ingestor

    with DocStore(settings.docstore_path) as docstore:
        ingestor = Ingestor(settings, assistant.embedder, assistant.store, docstore, None)
        docs = [(Document(t, t, t, text, {}), hashlib.sha256(text.encode()).hexdigest()) for t, text in corpus.items()]
        ingestor.index_documents(docs, progress=True)


def first_rewrite(info: dict[str, Any], question: str) -> str | None:
    """The model's first rewrite line, before any guard (None when the reply had no usable line)."""
    try:
        return parse_rewrites(info["reply"][0], question, 1)[0] if info.get("reply") else None
    except Malformed:
        return None


def recalls(assistant: Assistant, query: str, evidence: list[str], history: list[Exchange] = ()) -> tuple[dict[str, float], Trace]:
    trace = Trace()
    hits = assistant.search(query, trace, top_k=10, history=history)
    ranked = list(dict.fromkeys(h.doc_id for h in hits))
    return {f"recall@{k}": recall_at_k(ranked, evidence, k) for k in (5, 10)}, trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hotpot", type=Path, default=DEFAULT_HOTPOT)
    parser.add_argument("-n", type=int, default=60)
    parser.add_argument("--topic-changes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("runs/followup"))
    args = parser.parse_args()

    follow_ups, changes, corpus = build(args.hotpot, args.n, args.topic_changes, args.seed)
    home = Path(tempfile.mkdtemp(prefix="tessera-followup-"))
    settings = Settings(**{**parse_overrides(args.overrides), "home": home})
    plain = settings.model_copy(update={"query": settings.query.model_copy(update={"rewrite": False})})
    assistant = Assistant(settings)
    index(assistant, settings, corpus)
    no_rewrite = Assistant(plain, embedder=assistant.embedder, generator=assistant.generator, store=assistant.store)

    rows, seconds, outcomes = [], [], Counter()
    for item in follow_ups:
        history = [Exchange(q, a) for q, a in item["history"]]
        row: dict[str, Any] = {"id": item["id"], "question": item["question"]}
        row["original"], _ = recalls(no_rewrite, item["original"], item["evidence"])
        row["follow-up"], _ = recalls(no_rewrite, item["question"], item["evidence"])
        began = time.perf_counter()
        row["fused"], trace = recalls(assistant, item["question"], item["evidence"], history)
        rewrite = next((s for s in trace.stages if s.name == "rewrite"), None)
        info = rewrite.details if rewrite else {}
        seconds.append(rewrite.seconds if rewrite else time.perf_counter() - began)
        kept = [v for v in info.get("variants", []) if v != item["question"]]
        row["variants"], row["discarded"] = info.get("variants", []), info.get("discarded", [])
        # What rewriting did before the guards: the model's first rewrite replaced the question.
        first = first_rewrite(info, item["question"])
        outcomes.update(["skipped" if info.get("skipped") else "kept" if kept else "fallback" if info.get("fallback") else "all discarded"])
        outcomes.update(f"discarded: {d['why'].split(' ')[0]}" for d in info.get("discarded", []))
        row["rewrite"] = recalls(no_rewrite, first, item["evidence"])[0] if first else row["follow-up"]
        rows.append(row)
        print(item["question"][:70], "→", kept[:1], row["fused"], flush=True)

    change_rows, skipped = [], 0
    for item in changes:
        history = [Exchange(q, a) for q, a in item["history"]]
        alone, _ = recalls(no_rewrite, item["question"], item["evidence"])
        after, trace = recalls(assistant, item["question"], item["evidence"], history)
        rewrite = next((s.details for s in trace.stages if s.name == "rewrite"), {})
        skipped += bool(rewrite.get("skipped"))
        change_rows.append({"id": item["id"], "alone": alone, "after": after})

    mean = lambda key, k, rs: round(statistics.fmean(r[key][f"recall@{k}"] for r in rs), 3)  # noqa: E731
    summary = {
        "settings": {"generator": settings.query.generator or settings.models.generator},
        "follow_ups": len(rows),
        "follow_up_recall": {key: {k: mean(key, k, rows) for k in (5, 10)} for key in ("original", "follow-up", "rewrite", "fused")},
        "rewrite_outcomes": dict(outcomes),
        "rewrite_seconds_p50": round(statistics.median(seconds), 2) if seconds else None,
        "topic_changes": len(change_rows),
        "topic_change_skipped": skipped,
        "topic_change_recall": {key: {k: mean(key, k, change_rows) for k in (5, 10)} for key in ("alone", "after")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + change_rows))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
