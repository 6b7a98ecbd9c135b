"""eval/ablation.sh: the rows it runs, the generator it asks, and refusing an unknown row."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess

SCRIPT = Path(__file__).resolve().parents[1] / "eval" / "ablation.sh"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # `echo` stands in for the tessera command, so the test sees each command line the script would run.
    environment = {**os.environ, "TESSERA": "echo", **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment, check=False)


def test_every_row_on_every_set_by_default() -> None:
    lines = _run().stdout.splitlines()
    runs = [line for line in lines if line.startswith("eval run")]
    assert len(runs) == 3 * 24
    assert {line.split()[2] for line in runs} == {"data/squad2", "data/hotpotqa", "data/musique"}
    assert "eval run data/squad2 --out runs/ablation/squad2/3-hybrid --home .tessera-eval --retrieval-only --no-progress" in lines
    assert [line for line in lines if line.startswith("eval table")] == [
        f"eval table runs/ablation/{data}/*" for data in ("squad2", "hotpotqa", "musique")
    ]


def test_limit_samples_every_row_alike_and_rerank_asks_the_query_generator() -> None:
    result = _run("h", "r", "3-hybrid", "13-rerank-20", SETS="musique", LIMIT="50", QUERY_GENERATOR="qwen2.5-coder-1.5b")
    assert [line for line in result.stdout.splitlines() if line.startswith("eval run")] == [
        "eval run data/musique --out r/musique/3-hybrid --home h --retrieval-only --no-progress --limit 50",
        "eval run data/musique --out r/musique/13-rerank-20 --home h --retrieval-only --no-progress --limit 50"
        " --set retrieval.rerank=20 --set retrieval.rerank_order=replace --set query.generator=qwen2.5-coder-1.5b",
    ]


def test_chosen_rows_ask_the_query_generator_only_where_an_llm_runs() -> None:
    result = _run("h", "r", "3-hybrid", "4-hyde", "5c-expansion-cot", SETS="hotpotqa", QUERY_GENERATOR="qwen2.5-coder-0.5b")
    runs = [line for line in result.stdout.splitlines() if line.startswith("eval run")]
    assert runs == [
        "eval run data/hotpotqa --out r/hotpotqa/3-hybrid --home h --retrieval-only --no-progress",
        "eval run data/hotpotqa --out r/hotpotqa/4-hyde --home h --retrieval-only --no-progress"
        " --set query.hyde=true --set query.generator=qwen2.5-coder-0.5b",
        "eval run data/hotpotqa --out r/hotpotqa/5c-expansion-cot --home h --retrieval-only --no-progress"
        " --set query.expansion=cot --set query.generator=qwen2.5-coder-0.5b",
    ]


def test_an_unknown_row_is_refused_with_the_known_ones() -> None:
    result = _run("h", "r", "8-magic", SETS="squad2")
    assert result.returncode == 2
    assert "unknown row '8-magic'" in result.stderr and "4-hyde" in result.stderr
