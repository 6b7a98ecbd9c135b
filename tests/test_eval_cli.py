"""`tessera eval convert` and `tessera eval run` through the command line (fake models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from conftest import dev_data

runner = CliRunner()


def test_convert_then_run_offline(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = dev_data("squad/dev-v2.0.rebuilt.json")
    monkeypatch.setenv("TESSERA_MODELS__EMBEDDER", "fake")
    monkeypatch.setenv("TESSERA_MODELS__GENERATOR", "fake")
    monkeypatch.setenv("TESSERA_EVAL__JUDGE", "fake")
    data = tmp_path / "squad2"
    result = runner.invoke(app, ["eval", "convert", "squad-v2", str(source), str(data), "--limit", "8", "--distractors", "12"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((data / "dataset.json").read_text())
    assert manifest["questions"] == 8 and manifest["format"] == "squad-v2"
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["eval", "run", str(data), "--out", str(out), "--limit", "4", "--home", str(settings.home), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    assert json.loads((out / "summary.json").read_text())["questions"] == 4


def test_convert_unknown_format_and_bad_run_args(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "convert", "nope", str(tmp_path), str(tmp_path / "o")])
    assert result.exit_code == 2 and "squad-v2" in result.output
    result = runner.invoke(app, ["eval", "run", str(tmp_path), "--out", str(tmp_path / "o"), "--pipeline", "x"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["eval", "run", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "tessera eval convert" in result.output
