"""Aggregates a run's rows into ``summary.json`` and writes ``report.md`` with matplotlib plots."""

from __future__ import annotations

import importlib.metadata
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from eval.metrics import abstention_scores, bootstrap_ci

_PACKAGES = ("tessera", "torch", "transformers", "sentence-transformers", "qdrant-edge-py", "qdrant-client",
             "llama-index-core", "ragas")
# The metrics shown first in the report, in this order; everything else follows alphabetically.
HEADLINE = ("recall@5", "recall@10", "recall@20", "all_evidence@10", "mrr@10", "ndcg@10", "passage_recall@5", "em", "f1")


def versions() -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def metric_table(rows: list[dict[str, Any]], resamples: int = 1000) -> dict[str, dict[str, Any]]:
    """Mean and 95% bootstrap CI of every numeric per-question metric, over the rows that have it."""
    names = sorted({k for r in rows for k, v in r["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    table = {}
    for name in names:
        values = [float(r["metrics"][name]) for r in rows if r["metrics"].get(name) is not None]
        if not values:
            continue
        low, high = bootstrap_ci(values, resamples=resamples)
        table[name] = {"mean": statistics.fmean(values), "ci_low": low, "ci_high": high, "n": len(values)}
    return table


def missing_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each metric that could not be computed somewhere: how often, and the distinct reasons."""
    missing: dict[str, dict[str, Any]] = {}
    for row in rows:
        for name, reason in row.get("missing", {}).items():
            entry = missing.setdefault(name, {"count": 0, "reasons": []})
            entry["count"] += 1
            if reason not in entry["reasons"]:
                entry["reasons"].append(reason)
    return missing


def latency_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """p50 / p95 / mean seconds per trace stage, and for the whole answer."""
    stages: dict[str, list[float]] = {}
    for row in rows:
        for name, seconds in row["timings"].items():
            stages.setdefault(name, []).append(seconds)
        total = sum(v for k, v in row["timings"].items() if k != "retrieval_total")
        stages.setdefault("total", []).append(total)
    return {
        name: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "mean": statistics.fmean(v)}
        for name, v in stages.items()
    }


def summarise(rows: list[dict[str, Any]], settings: Settings, dataset: Any, config: Any, wall: float) -> dict[str, Any]:
    """Everything needed to compare this run with another, and to rerun it."""
    return {
        "dataset": {"path": str(config.data_dir), "name": dataset.name, "manifest": dataset.manifest},
        "pipeline": config.pipeline,
        "without": list(getattr(config, "without", ())),
        "limit": config.limit,
        "seed": config.seed,
        "questions": len(rows),
        "answerable": sum(r["answerable"] for r in rows),
        "metrics": metric_table(rows, settings.eval.bootstrap),
        "abstention": abstention_scores(
            [r["abstained"] for r in rows if "abstained" in r], [r["answerable"] for r in rows if "abstained" in r]
        ),
        "retrieval_only": bool(rows) and all("abstained" not in r for r in rows),
        "missing": missing_table(rows),
        "latency": latency_table(rows),
        "judge": judge_summary(settings),
        "settings": settings.model_dump(
            mode="json", exclude={"models": {"openai_api_key"}, "store": {"qdrant_api_key"}}
        ),
        "versions": versions(),
        "wall_seconds": wall,
    }


def judge_summary(settings: Settings) -> dict[str, Any] | None:
    """Who judged the LLM metrics, on how many questions, and the judge's measured agreement with labels."""
    from eval.judge_agreement import left_out, load_agreement

    name = settings.eval.judge
    if not name:
        return None
    agreement = load_agreement(name, settings.home)
    return {"name": name, "sample": settings.eval.judge_sample, "agreement": agreement,
            "left_out": left_out(settings.eval.judge_metrics, agreement)}


def judge_lines(judge: dict[str, Any] | None) -> list[str]:
    """The report's paragraph on the judge: how far to trust the LLM-judged metrics above it."""
    if judge is None:
        return ["No judge model is configured (`eval.judge`): the LLM-judged RAGAS metrics are not computed."]
    lines = [f"LLM-judged RAGAS metrics are scored by `{judge['name']}` on the first {judge['sample']} questions."]
    if left := judge.get("left_out"):
        lines += ["", "Left out: " + ", ".join(f"ragas.{m} ({why})" for m, why in left.items()) + "."]
    agreement = judge["agreement"]
    if agreement is None:
        return lines + [
            "", f"This judge's agreement with labels was never measured: run "
            f"`python -m eval.judge_agreement --judge {judge['name']}` before trusting its scores.",
        ]
    lines += [
        "", f"Its agreement with labelled items (`{agreement['command']}`, commit {agreement.get('commit') or '?'}; "
        f"score ≥ {agreement['threshold']} read as yes):", "",
        "| metric | accuracy | Cohen's κ | AUC | items | judge failed | use it? |", "|---|---|---|---|---|---|---|",
    ]
    for name, m in agreement["metrics"].items():
        lines.append(
            f"| ragas.{name} | {_fmt(m['accuracy'])} | {_fmt(m['kappa'])} | {_fmt(m['auc'])} | {m['n']} | {m['failed']} "
            f"| {_verdict(m['kappa'])} |"
        )
    return lines


def _verdict(kappa: float | None) -> str:
    from eval.judge_agreement import TRUSTED_KAPPA

    if kappa is None:
        return "unknown"
    return "yes" if kappa > TRUSTED_KAPPA else f"no: κ ≤ {TRUSTED_KAPPA}"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _ordered(names: list[str]) -> list[str]:
    return [n for n in HEADLINE if n in names] + sorted(n for n in names if n not in HEADLINE)


def write_report(out: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> Path:
    """Writes ``report.md`` plus ``metrics.png`` and ``latency.png`` next to it."""
    _plot_metrics(out / "metrics.png", rows, summary)
    _plot_latency(out / "latency.png", rows)
    ab = summary["abstention"]
    lines = [
        f"# Evaluation: {summary['dataset']['name']} — {summary['pipeline']} pipeline"
        + (f" without {', '.join(summary['without'])}" if summary.get("without") else ""),
        "",
        f"{summary['questions']} questions ({summary['answerable']} answerable), seed {summary['seed']}, "
        f"wall time {summary['wall_seconds']:.0f} s. Generator `{summary['settings']['models']['generator']}`, "
        f"embedder `{summary['settings']['models']['embedder']}`, retrieval `{summary['settings']['retrieval']['mode']}`.",
        "",
        "## Metrics (mean, 95% bootstrap CI)",
        "",
        "| metric | mean | 95% CI | n |",
        "|---|---|---|---|",
    ]
    for name in _ordered(list(summary["metrics"])):
        m = summary["metrics"][name]
        lines.append(f"| {name} | {m['mean']:.3f} | {m['ci_low']:.3f}–{m['ci_high']:.3f} | {m['n']} |")
    lines += [
        "",
        f"Abstention (positive = unanswerable): precision {_fmt(ab['precision'])}, recall {_fmt(ab['recall'])}, "
        f"F1 {_fmt(ab['f1'])}.",
        "",
        "![metric distributions](metrics.png)",
        "",
        "## Judge",
        "",
        *judge_lines(summary.get("judge")),
        "",
        "## Not computed",
        "",
    ]
    if summary["missing"]:
        lines += ["| metric | questions | why |", "|---|---|---|"]
        for name, entry in sorted(summary["missing"].items()):
            lines.append(f"| {name} | {entry['count']} | {'; '.join(entry['reasons'])} |")
    else:
        lines.append("Every metric was computed for every question.")
    lines += ["", "## Latency per stage (seconds)", "", "| stage | p50 | p95 | mean |", "|---|---|---|---|"]
    for name, t in summary["latency"].items():
        lines.append(f"| {name} | {t['p50']:.3f} | {t['p95']:.3f} | {t['mean']:.3f} |")
    lines += ["", "![latency per stage](latency.png)", "", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in summary["versions"].items()]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _plot_metrics(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _ordered(list(summary["metrics"]))[:12]
    if not names:
        return
    cols = 4
    fig, axes = plt.subplots((len(names) + cols - 1) // cols, cols, figsize=(12, 2.6 * ((len(names) + cols - 1) // cols)), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values = [r["metrics"][name] for r in rows if r["metrics"].get(name) is not None]
        ax.hist(values, bins=10, range=(0, 1) if max(values, default=0) <= 1 else None, color="#4c72b0")
        ax.set_title(f"{name} (mean {summary['metrics'][name]['mean']:.2f})", fontsize=9)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_latency(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = sorted({name for r in rows for name in r["timings"]})
    if not stages:
        return
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(stages)))
    ax.boxplot([[r["timings"].get(s, 0.0) for r in rows] for s in stages], orientation="horizontal", showfliers=False)
    ax.set_yticks(range(1, len(stages) + 1), stages)
    ax.set_xlabel("seconds")
    ax.set_title("Latency per stage")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
