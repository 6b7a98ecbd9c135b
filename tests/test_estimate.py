"""The time an ingest is expected to take, said before it starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from assistant.cli import app
from assistant.config import Settings
from assistant.models.fake import FakeEmbedder
from ingestion.estimate import estimate, text_bytes


def test_text_bytes_counts_markup_and_containers_at_a_share(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x" * 1000)
    (tmp_path / "b.html").write_text("x" * 1000)
    (tmp_path / "c.pdf").write_bytes(b"x" * 1000)
    assert text_bytes([tmp_path / "a.md", tmp_path / "b.html", tmp_path / "c.pdf", tmp_path / "gone.txt"]) == 1000 + 400 + 250


def test_the_estimate_scales_with_the_text_and_the_propositions(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("word " * 200_000)
    off = estimate([tmp_path / "a.md"], FakeEmbedder(), settings)
    assert off.files == 1 and off.text_mb == 1.0 and off.seconds == 1e6 / off.chars_per_second
    rules = settings.model_copy(update={"ingestion": settings.ingestion.model_copy(update={"propositions": "rules"})})
    assert "propositions on" in estimate([tmp_path / "a.md"], FakeEmbedder(), rules).describe(rules, "fake")
    assert off.describe(settings, "fake").startswith("about ") and "to index 1 files (~1.0 MB of text) with fake" in off.describe(settings, "fake")


def test_ingest_says_the_estimate_only_for_what_needs_indexing(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    import assistant.ingest_command as command

    monkeypatch.setenv("TESSERA_MODELS__EMBEDDER", "fake")
    monkeypatch.setenv("TESSERA_HOME", str(settings.home))
    monkeypatch.setattr(command, "ESTIMATE_FROM_BYTES", 100.0)  # a small folder counts as large here
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n" + "Lake Baikal is deep. " * 20)
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", str(folder)])
    assert first.exit_code == 0 and "about " in first.output and "to index 1 files" in first.output
    again = runner.invoke(app, ["ingest", str(folder)])
    assert "to index" not in again.output and "1 unchanged" in again.output  # nothing to index: nothing to estimate
