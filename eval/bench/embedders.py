"""The bundled embedders side by side: what each costs a fresh process, each passage indexed and each query.

For every embedder named: a new process that imports its runtime, loads the model and embeds one question
(the cost a cold `tessera ask` pays), passages embedded per second (ingestion's floor), and the p50 of one
query's embedding in a warm process. The embedders take turns in one run, so the ratios hold on a noisy
machine.

Run: ``python -m eval.bench.embedders data/hotpotqa --texts 256 --names minilm e5-small mpnet``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

_COLD = """
import time; began = time.perf_counter()
from assistant.config import Settings
from assistant.models.registry import create_embedder
e = create_embedder(Settings(), {name!r}); e.embed_queries(["How deep is Lake Baikal?"])
print(time.perf_counter() - began)
"""


def cold_seconds(name: str, repeats: int) -> list[float]:
    """Seconds a new interpreter takes from its first import to one embedded question."""
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _COLD.format(name=name)], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a dataset folder (tessera eval convert)")
    parser.add_argument("--texts", type=int, default=256, help="corpus passages embedded per embedder")
    parser.add_argument("--queries", type=int, default=50, help="questions embedded one at a time")
    parser.add_argument("--repeats", type=int, default=3, help="cold processes per embedder")
    parser.add_argument("--names", nargs="+", default=["minilm", "e5-small", "mpnet"])
    args = parser.parse_args()

    from assistant.config import Settings
    from assistant.models.registry import create_embedder
    from eval.datasets import load_dataset

    dataset = load_dataset(args.data)
    texts = [r.text for r in dataset.corpus[: args.texts]]
    questions = [q.question for q in dataset.questions[: args.queries]]
    rows: dict[str, dict[str, float]] = {name: {} for name in args.names}
    cold: dict[str, list[float]] = {name: [] for name in args.names}
    for _ in range(args.repeats):  # in turn: A B C A B C ...
        for name in args.names:
            cold[name] += cold_seconds(name, 1)
    for name in args.names:
        embedder = create_embedder(Settings(), name)
        embedder.embed(["warm up"])
        began = time.perf_counter()
        embedder.embed(texts)
        rows[name]["passages/s"] = len(texts) / (time.perf_counter() - began)
        one = []
        for q in questions:
            began = time.perf_counter()
            embedder.embed_queries([q])
            one.append(time.perf_counter() - began)
        rows[name]["query ms"] = 1000 * statistics.median(one)
        rows[name]["cold s"] = statistics.median(cold[name])
    first = args.names[0]
    print(f"| embedder | cold process to one query vector, s (median of {args.repeats}) | passages/s ({len(texts)}) "
          f"| vs {first} | one query, ms (p50 of {len(questions)}) |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['cold s']:.2f} | {r['passages/s']:.1f} | {r['passages/s'] / rows[first]['passages/s']:.2f}× "
              f"| {r['query ms']:.1f} |")


if __name__ == "__main__":
    main()
