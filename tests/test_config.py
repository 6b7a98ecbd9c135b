from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant.config import Settings, load_settings, parse_overrides


def test_defaults(settings: Settings) -> None:
    assert settings.retrieval.top_k == 4
    assert settings.retrieval.mode == "hybrid"
    assert settings.store.qdrant_url is None
    assert settings.docstore_path.parent == settings.home


def test_precedence_toml_env_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tessera.toml").write_text('home = "/tmp/from-toml"\n[retrieval]\ntop_k = 5\ncandidates = 30\n')
    assert load_settings().retrieval.top_k == 5
    monkeypatch.setenv("TESSERA_RETRIEVAL__TOP_K", "6")
    loaded = load_settings()
    assert loaded.retrieval.top_k == 6
    assert loaded.retrieval.candidates == 30  # the file still counts for what env doesn't set
    loaded = load_settings({"retrieval": {"top_k": "7"}})
    assert loaded.retrieval.top_k == 7 and loaded.retrieval.candidates == 30
    assert loaded.home == Path("/tmp/from-toml")


def test_tessera_config_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "elsewhere.toml"
    other.write_text("[models]\ngenerator = 'gemma3-270m'\n")
    monkeypatch.setenv("TESSERA_CONFIG", str(other))
    assert load_settings().models.generator == "gemma3-270m"


def test_invalid_values_are_rejected(settings: Settings) -> None:
    with pytest.raises(ValidationError, match="top_k"):
        load_settings({"retrieval": {"top_k": 0}})
    with pytest.raises(ValidationError):
        load_settings({"retrieval": {"no_such_field": 1}})


def test_parse_overrides() -> None:
    assert parse_overrides(["retrieval.top_k=8", "home=/x", "models.generator=openai:m=1"]) == {
        "retrieval": {"top_k": "8"},
        "home": "/x",
        "models": {"generator": "openai:m=1"},
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["retrieval.top_k"])
