from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assistant.cli import app
from eval.compare import compare_runs, format_table, paired_randomisation_p


def write_run(folder: Path, f1: list[float]) -> Path:
    folder.mkdir(parents=True)
    rows = [{"id": f"q{i}", "metrics": {"f1": v, "abstained": False}} for i, v in enumerate(f1)]
    (folder / "answers.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_randomisation_p_value() -> None:
    a = np.zeros(20)
    assert paired_randomisation_p(a, a) == 1.0
    # every pair improves by 1: only the all-positive sign pattern is as extreme, p ~ 2 / 2^20 -> tiny
    assert paired_randomisation_p(a, a + 1, permutations=2000) < 0.01
    noisy = np.array([1.0, -1.0] * 10)
    assert paired_randomisation_p(a, noisy, permutations=2000) > 0.5


def test_compare_runs_pairs_by_question(tmp_path: Path) -> None:
    run_a = write_run(tmp_path / "a", [0.0] * 30)
    run_b = write_run(tmp_path / "b", [1.0] * 30 + [0.5])  # q30 exists only in B: ignored
    (delta,) = compare_runs(run_a, run_b, permutations=2000)
    assert delta.metric == "f1" and delta.n == 30
    assert delta.delta == 1.0 and delta.p_value < 0.01
    assert "| f1 | 30 | 0.000 | 1.000 | +1.000 *" in format_table([delta], "a", "b")


def test_compare_cli_writes_plot(tmp_path: Path) -> None:
    run_a = write_run(tmp_path / "a", [0.2, 0.4, 0.6])
    run_b = write_run(tmp_path / "b", [0.3, 0.4, 0.9])
    result = CliRunner().invoke(app, ["eval", "compare", str(run_a), str(run_b)])
    assert result.exit_code == 0, result.output
    assert "| f1 |" in result.output
    assert (run_b / "compare.png").stat().st_size > 0
    assert json.loads((run_b / "compare.json").read_text())[0]["metric"] == "f1"


def test_compare_without_shared_questions_is_an_error(tmp_path: Path) -> None:
    run_a = write_run(tmp_path / "a", [0.2])
    run_b = tmp_path / "b"
    run_b.mkdir()
    (run_b / "answers.jsonl").write_text(json.dumps({"id": "other", "metrics": {"f1": 1.0}}) + "\n")
    with pytest.raises(ValueError, match="share no question"):
        compare_runs(run_a, run_b)
    result = CliRunner().invoke(app, ["eval", "compare", str(run_a), str(tmp_path / "missing")])
    assert result.exit_code == 2 and "answers.jsonl" in result.output


def test_table_of_runs(tmp_path: Path) -> None:
    run = tmp_path / "r1"
    run.mkdir()
    summary = {
        "pipeline": "tessera",
        "questions": 2,
        "metrics": {"recall@5": {"mean": 0.5}, "f1": {"mean": 0.25}},
        "abstention": {"f1": None},
        "latency": {"embed_query": {"p50": 0.01}, "search": {"p50": 0.002}, "total": {"p50": 3.0}},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(app, ["eval", "table", str(run)])
    assert result.exit_code == 0, result.output
    assert "| r1 | tessera | 2 | 0.500 | — | — | — | — | 0.250 | — | 0.012 | 3.00 |" in result.output
    assert CliRunner().invoke(app, ["eval", "table", str(tmp_path / "none")]).exit_code == 2
