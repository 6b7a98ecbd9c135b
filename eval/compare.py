"""`tessera eval compare`: per-metric deltas between two runs, with a paired randomisation test."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Delta:
    """One metric's change from run A to run B over the questions both answered."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    delta: float
    p_value: float


def paired_randomisation_p(a: np.ndarray, b: np.ndarray, *, permutations: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that the mean paired difference is zero, by randomly flipping each pair's sign.

    Exact for the null "A and B are exchangeable per question", with no normality assumption.
    """
    diff = b - a
    observed = abs(diff.mean())
    if not diff.any():
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(permutations, diff.size))
    extreme = (np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum()
    return float((extreme + 1) / (permutations + 1))


def load_rows(run: Path) -> dict[str, dict[str, Any]]:
    """A run's answers keyed by question id."""
    path = run / "answers.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{run} holds no answers.jsonl: is it a `tessera eval run` output folder?")
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines()) if row}


def compare_runs(run_a: Path, run_b: Path, *, permutations: int = 10_000) -> list[Delta]:
    """Deltas for every numeric metric present in both runs, paired by question id."""
    rows_a, rows_b = load_rows(run_a), load_rows(run_b)
    shared = sorted(set(rows_a) & set(rows_b))
    if not shared:
        raise ValueError(f"{run_a} and {run_b} share no question ids: compare runs over the same dataset")
    metrics = sorted(
        {k for q in shared for k, v in rows_a[q]["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    )
    deltas = []
    for metric in metrics:
        pairs = [
            (rows_a[q]["metrics"][metric], rows_b[q]["metrics"].get(metric))
            for q in shared
            if rows_a[q]["metrics"].get(metric) is not None and rows_b[q]["metrics"].get(metric) is not None
        ]
        if not pairs:
            continue
        a, b = (np.asarray(x, dtype=float) for x in zip(*pairs))
        deltas.append(
            Delta(metric, len(pairs), float(a.mean()), float(b.mean()), float((b - a).mean()),
                  paired_randomisation_p(a, b, permutations=permutations))
        )
    return deltas


def format_table(deltas: list[Delta], name_a: str, name_b: str) -> str:
    """A Markdown table of the deltas; p < 0.05 is marked."""
    lines = [f"| metric | n | {name_a} | {name_b} | Δ | p |", "|---|---|---|---|---|---|"]
    for d in deltas:
        mark = " *" if d.p_value < 0.05 else ""
        lines.append(f"| {d.metric} | {d.n} | {d.mean_a:.3f} | {d.mean_b:.3f} | {d.delta:+.3f}{mark} | {d.p_value:.4f} |")
    return "\n".join(lines)


def plot_deltas(deltas: list[Delta], path: Path, title: str) -> None:
    """A horizontal bar chart of the deltas, significant ones in a darker colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.35 * max(len(deltas), 1)))
    names = [d.metric for d in deltas]
    colours = ["#c44e52" if d.p_value < 0.05 else "#a0a0a0" for d in deltas]
    ax.barh(names, [d.delta for d in deltas], color=colours)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("B − A (red: p < 0.05, paired randomisation test)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


TABLE_METRICS = ("recall@5", "recall@20", "mrr@10", "ndcg@10", "em", "f1")


def summary_table(runs: list[Path]) -> str:
    """One Markdown row per run: headline metrics, abstention F1 and answer latency p50."""
    header = ["run", "pipeline", "n", *TABLE_METRICS, "abstention F1", "retrieval p50 (s)", "answer p50 (s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        path = run / "summary.json"
        if not path.exists():
            raise FileNotFoundError(f"{run} has no summary.json: run `tessera eval run` to completion first")
        s = json.loads(path.read_text())
        values = [f"{s['metrics'][m]['mean']:.3f}" if m in s["metrics"] else "—" for m in TABLE_METRICS]
        f1 = s["abstention"]["f1"]
        latency = s["latency"]
        if "retrieval_total" in latency:
            retrieval = latency["retrieval_total"]["p50"]
        else:  # runs from before retrieval_total was recorded
            retrieval = sum(latency[k]["p50"] for k in ("embed_query", "search", "retrieve") if k in latency)
        answer = "—" if s.get("retrieval_only") else f"{latency['total']['p50']:.2f}"
        lines.append(
            f"| {run.name} | {s['pipeline']} | {s['questions']} | " + " | ".join(values)
            + f" | {'—' if f1 is None else f'{f1:.3f}'} | {retrieval:.3f} | {answer} |"
        )
    return "\n".join(lines)
