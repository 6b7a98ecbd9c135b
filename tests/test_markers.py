"""The fast loop: plain `pytest` leaves out the slow groups, and CI (scripts/test.sh) runs them all."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_plain_pytest_leaves_out_integration_slow_and_browser_tests() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert config["addopts"] == "-m 'not integration and not slow and not browser'"
    declared = {m.split(":")[0] for m in config["markers"]}
    assert declared == {"integration", "slow", "browser"}


@pytest.mark.parametrize(("module", "marker"), [("test_web_load", "slow"), ("test_web", "browser")])
def test_the_long_modules_carry_their_marker(module: str, marker: str) -> None:
    source = (ROOT / "tests" / f"{module}.py").read_text()
    assert f"pytest.mark.{marker}," in source.split("pytestmark = ", 1)[1].split("\n\n", 1)[0]


def test_ci_lifts_the_default_and_runs_everything() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text()
    assert '.venv/bin/python -m pytest -q -m "" "$@"' in script
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
