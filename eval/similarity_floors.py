"""Where each embedder's cosine floors sit: the relevance gate's and memory's (`Embedder.relevance_floor`,
`Embedder.memory_floor`).

Models spread cosine similarities differently (MiniLM: unrelated texts near 0.3; E5: near 0.8), so a floor
set for one model means nothing for another. This prints, per embedder, the share that passes a range of
floors:

- **gate**: the best passage's cosine for SQuAD v2.0 questions against their own corpus (on-topic) and for
  HotpotQA and MuSiQue questions against the same corpus (off-topic: the gate's job is to turn these away);
- **memory**: the top-4 turns' cosines for LoCoMo questions (conversations 1-2, exchanges as memory stores
  them), and the share of the evidence turns among them that a floor keeps.

A new model's floors are set to pass the same shares as MiniLM's 0.25 and 0.5 (docs/EVALUATION.md §4).

Run: ``python -m eval.similarity_floors --embedders minilm e5-small`` (after `tessera eval convert` of
squad-v2, hotpotqa and musique into data/; a few minutes per embedder).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LOCOMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev" / "locomo" / "locomo10.json"


def _questions(folder: Path) -> list[str]:
    return [json.loads(line)["question"] for line in (folder / "questions.jsonl").open()]


def gate_scores(embedder: object, data: Path) -> dict[str, np.ndarray]:
    """Best-passage cosines of on-topic and off-topic questions against the SQuAD corpus."""
    corpus = [json.loads(line)["text"] for line in (data / "squad2" / "corpus.jsonl").open()]
    passages = embedder.embed(corpus)  # type: ignore[attr-defined]

    def best(questions: list[str]) -> np.ndarray:
        return (embedder.embed_queries(questions) @ passages.T).max(axis=1)  # type: ignore[attr-defined]

    off_topic = _questions(data / "hotpotqa") + _questions(data / "musique")
    return {"on": best(_questions(data / "squad2")), "off": best(off_topic)}


def memory_scores(embedder: object, locomo: Path, conversations: int = 2, per_conversation: int = 150) -> dict[str, np.ndarray]:
    """Top-4 turn cosines for LoCoMo questions, and those of the evidence turns among them."""
    shown, evidence = [], []
    for conversation in json.loads(locomo.read_text())[:conversations]:
        utterances = [u for k, v in conversation["conversation"].items() if k.startswith("session_") and isinstance(v, list) for u in v]
        pairs = [utterances[i : i + 2] for i in range(0, len(utterances), 2)]  # one exchange per memory turn
        vectors = embedder.embed(["\n".join(f"{u['speaker']}: {u['text']}" for u in p) for p in pairs])  # type: ignore[attr-defined]
        questions = [q for q in conversation["qa"] if q.get("evidence")][:per_conversation]
        scores = embedder.embed_queries([q["question"] for q in questions]) @ vectors.T  # type: ignore[attr-defined]
        for question, row in zip(questions, scores):
            for j in np.argsort(-row)[:4]:
                shown.append(row[j])
                if {u["dia_id"] for u in pairs[j]} & set(question["evidence"]):
                    evidence.append(row[j])
    return {"shown": np.array(shown), "evidence": np.array(evidence)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", nargs="+", default=["minilm", "e5-small"])
    parser.add_argument("--data", type=Path, default=Path("data"), help="the folder holding squad2, hotpotqa, musique")
    parser.add_argument("--locomo", type=Path, default=LOCOMO)
    args = parser.parse_args()

    from assistant.config import Settings
    from assistant.models.registry import create_embedder

    for name in args.embedders:
        embedder = create_embedder(Settings(), name)
        gate, memory = gate_scores(embedder, args.data), memory_scores(embedder, args.locomo)
        print(f"\n## {name} (its floors: gate {embedder.relevance_floor}, memory {embedder.memory_floor})")
        print("| floor | gate: on-topic passed | gate: off-topic passed | memory: top-4 shown | memory: evidence kept |")
        print("|---|---|---|---|---|")
        low = float(np.quantile(np.concatenate([gate["off"], memory["shown"]]), 0.01))
        step = 0.01 if low > 0.6 else 0.05  # a compressed scale (E5) needs a finer grid
        grid = np.round(np.arange(np.floor(low / step) * step, 0.95, step), 2)
        for floor in sorted({*grid.tolist(), embedder.relevance_floor, embedder.memory_floor}):
            print(f"| {floor:.2f} | {np.mean(gate['on'] >= floor):.3f} | {np.mean(gate['off'] >= floor):.3f} "
                  f"| {np.mean(memory['shown'] >= floor):.3f} | {np.mean(memory['evidence'] >= floor):.3f} |")


if __name__ == "__main__":
    main()
