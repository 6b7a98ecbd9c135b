"""Shared fixtures: settings in a temporary home, fake models, paths to the dev data."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.models.fake import FakeEmbedder, FakeGenerator

ROOT = Path(__file__).resolve().parent.parent
DEV_DATA = ROOT.parent / "shared" / "data" / "dev"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with a fresh home, isolated from any tessera.toml or TESSERA_* of the developer."""
    for key in list(__import__("os").environ):
        if key.startswith("TESSERA_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return Settings(home=tmp_path / "home")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder(dimension=64)


@pytest.fixture
def fake_generator() -> FakeGenerator:
    return FakeGenerator()


def dev_data(relative: str) -> Path:
    """A file of ../shared/data/dev, or a skip saying where it was expected."""
    path = DEV_DATA / relative
    if not path.exists():
        pytest.skip(f"dev data {path} is absent (it lives in ../shared/data/dev beside the project)")
    return path
