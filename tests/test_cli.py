"""The tessera command line, driven through Typer's runner with fake models (no weights load)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app

runner = CliRunner()


@pytest.fixture
def env(settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TESSERA_MODELS__EMBEDDER", "fake")
    monkeypatch.setenv("TESSERA_MODELS__GENERATOR", "fake")
    monkeypatch.setenv("TESSERA_HOME", str(settings.home))
    return {}


def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world.\n")
    (folder / "empty.txt").write_text("")
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7 not really")
    (folder / "binary.md").write_bytes(b"\x00\x01\x02" * 100)
    return folder


@pytest.mark.parametrize(
    "command", [[], ["ingest"], ["ask"], ["search"], ["docs"], ["migrate"], ["forget"], ["config"], ["eval"], ["eval", "run"], ["chat"], ["web"], ["memory"], ["memory", "list"], ["memory", "forget"]]
)
def test_help_on_every_command(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_ingest_names_bad_files_and_exits_zero(env, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(corpus(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "ingested 1 file(s)" in result.output
    for name, reason in [("empty.txt", "empty"), ("corrupt.pdf", "PDF"), ("binary.md", "binary")]:
        line = next(line for line in result.output.splitlines() if name in line)
        assert line.startswith("skipped") and reason in line


def test_ingest_nothing_readable_exits_one(env, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    assert runner.invoke(app, ["ingest", str(tmp_path / "empty.txt")]).exit_code == 1


def test_search_and_docs_json(env, tmp_path: Path) -> None:
    runner.invoke(app, ["ingest", str(corpus(tmp_path))])
    result = runner.invoke(app, ["search", "deepest lake", "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["hits"][0]["text"].startswith("# Lakes")
    assert {s["name"] for s in data["trace"]["stages"]} == {"embed_query", "metadata", "search", "legs"}
    assert data["variants"] == ["deepest lake"] and data["steps"] == {}
    assert set(data["legs"]) == {"q0.dense", "q0.bm25"}
    assert data["fused"] == [h["unit_id"] for h in data["hits"]]
    docs = json.loads(runner.invoke(app, ["docs", "--json"]).output)
    assert [Path(d["source"]).name for d in docs] == ["good.md"]


def test_ask_json_has_answer_contexts_and_timings(env, tmp_path: Path) -> None:
    runner.invoke(app, ["ingest", str(corpus(tmp_path))])
    result = runner.invoke(app, ["ask", "Which is the deepest lake?", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"text", "citations", "contexts", "abstained", "trace", "timings"}
    assert data["contexts"][0]["source"].endswith("good.md")
    assert data["abstained"] is True  # the fake generator answers "I don't know."
    assert "generate" in data["timings"]


def test_ask_on_empty_home_says_nothing_is_indexed(env) -> None:
    result = runner.invoke(app, ["ask", "anything?"])
    assert result.exit_code == 0
    assert "The documents don't say." in result.output and "tessera ingest" in result.output


def test_bad_setting_is_a_clear_usage_error(env) -> None:
    result = runner.invoke(app, ["config", "--set", "retrieval.top_k=0"])
    assert result.exit_code == 2 and "top_k" in result.output
    result = runner.invoke(app, ["config", "--set", "oops"])
    assert result.exit_code == 2 and "key=value" in result.output


def test_bad_settings_are_one_line_each_naming_the_key(env) -> None:
    result = runner.invoke(app, ["config", "--set", "memory.router=best", "--set", "memory.recal_k=3"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 2, result.output
    assert lines[0] == "error: memory.router: Input should be 'entropy', 'turn', 'summary', 'fact' or 'all' (got 'best')"
    assert lines[1].startswith("error: unknown setting memory.recal_k; did you mean recall_k? valid in memory: enabled,")
    assert "pydantic" not in result.output


def test_config_hides_secrets(env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_MODELS__OPENAI_API_KEY", "sk-secret")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0 and "sk-secret" not in result.output
    assert json.loads(result.output)["models"]["generator"] == "fake"


def test_docs_forget_and_prune(env, tmp_path: Path) -> None:
    folder = corpus(tmp_path)
    runner.invoke(app, ["ingest", str(folder), "--set", "ingestion.propositions=rules"])
    docs = json.loads(runner.invoke(app, ["docs", "--json"]).output)
    assert set(docs[0]) >= {"source", "content_hash", "passages", "propositions", "ingested_at"}
    assert docs[0]["propositions"] >= 1
    text = runner.invoke(app, ["docs"]).output
    assert "good.md" in text and "propositions" in text
    good = folder / "good.md"
    result = runner.invoke(app, ["forget", str(good)])
    assert result.exit_code == 0 and "forgot" in result.output
    assert runner.invoke(app, ["forget", str(good)]).exit_code == 1
    runner.invoke(app, ["ingest", str(folder)])
    good.unlink()
    result = runner.invoke(app, ["ingest", str(folder), "--prune"])
    assert "1 pruned" in result.output
    assert json.loads(runner.invoke(app, ["docs", "--json"]).output) == []


@pytest.fixture
def talkative(env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_MODELS__GENERATOR", "fake:It is Lake Baikal [1].")


def test_chat_plain_answers_each_stdin_line_with_citations(talkative, tmp_path: Path) -> None:
    runner.invoke(app, ["ingest", str(corpus(tmp_path))])
    result = runner.invoke(app, ["chat", "--plain", "--session", "s1"], input="Which is the deepest lake?\n\nWhich lake is the deepest in the world?\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("It is Lake Baikal [1].") == 2  # two questions, two answers; the blank line skipped
    assert "Sources:" in result.output and "good.md" in result.output
    assert result.stderr.splitlines()[0] == "session s1 (continue it with --session s1)"
    assert "session s1" not in result.stdout  # answers piped on stdout stay clean


def test_ask_with_a_session_remembers_and_memory_commands_manage_it(talkative, tmp_path: Path) -> None:
    runner.invoke(app, ["ingest", str(corpus(tmp_path))])
    first = runner.invoke(app, ["ask", "Which is the deepest lake?", "--session", "s1", "--user", "ana"])
    assert first.exit_code == 0, first.output
    later = runner.invoke(app, ["ask", "Tell me about Baikal again", "--session", "s2", "--user", "ana", "--json"])
    stages = {s["name"]: s["details"] for s in json.loads(later.output)["trace"]["stages"]}
    assert stages["memory"]["units"]  # a new session of the same user recalls the first one
    listed = json.loads(runner.invoke(app, ["memory", "list", "--user", "ana", "--json"]).output)
    assert [row["session"] for row in listed] == ["s1", "s2"]
    assert "Nothing remembered" in runner.invoke(app, ["memory", "list", "--user", "bob"]).output
    units = runner.invoke(app, ["memory", "list", "--user", "ana", "--session", "s1"]).output
    assert "[turn] User: Which is the deepest lake?" in units
    forgot = runner.invoke(app, ["memory", "forget", "--user", "ana", "--session", "s1"])
    assert forgot.exit_code == 0 and "forgot session 's1'" in forgot.output
    listed = json.loads(runner.invoke(app, ["memory", "list", "--user", "ana", "--json"]).output)
    assert [row["session"] for row in listed] == ["s2"]


def test_web_rejects_a_malformed_auth_file(env, tmp_path: Path) -> None:
    bad = tmp_path / "auth.txt"
    bad.write_text("no colon here\n")
    result = runner.invoke(app, ["web", "--auth", str(bad)])
    assert result.exit_code == 2 and "auth.txt" in result.output


def test_plain_ask_prints_what_no_source_supports(env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.invoke(app, ["ingest", str(corpus(tmp_path))])
    monkeypatch.setenv("TESSERA_MODELS__GENERATOR", "fake:A ticket cost 1,000 euros.")
    result = runner.invoke(app, ["ask", "How much did a ticket to the lake cost?"])
    assert result.exit_code == 0, result.output
    assert "⚠ Unverified: no source supports this answer" in result.output and "Sources:" not in result.output
    monkeypatch.setenv("TESSERA_MODELS__GENERATOR", "fake:Lake Baikal is the deepest lake in the world [1]. It was painted green.")
    result = runner.invoke(app, ["ask", "Which is the deepest lake?"])
    assert "⚠ Not supported by the sources: It was painted green." in result.output and "Sources:" in result.output


def test_help_renders_literally() -> None:
    """Help is plain text: "[n]" survives (Rich markup swallowed it) and flags show no <bool> placeholder."""
    top, ask = runner.invoke(app, ["--help"]).output, runner.invoke(app, ["ask", "--help"]).output
    assert "citing sources as [n]" in " ".join(ask.split()) and "citing sources as [n]" in " ".join(top.split())
    assert "<bool>" not in ask and "--stream" in ask


def test_ask_streams_on_a_terminal_only_unless_told(talkative, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import assistant.render

    runner.invoke(app, ["ingest", str(corpus(tmp_path))])
    modes: list[bool] = []
    real = assistant.render.answer_text

    def recording(answer, streamed=False):  # type: ignore[no-untyped-def]
        modes.append(streamed)
        return real(answer, streamed=streamed)

    monkeypatch.setattr(assistant.render, "answer_text", recording)
    for flags in ([], ["--stream"], ["--no-stream"]):
        assert runner.invoke(app, ["ask", "Which is the deepest lake?", *flags]).exit_code == 0
    assert modes == [False, True, False]  # the test's stdout is a pipe, not a terminal


def test_any_failure_ends_in_one_line_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import ingestion.docstore
    from assistant.cli import describe_failure, main

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "docstore.sqlite3"))

    monkeypatch.setattr(ingestion.docstore, "DocStore", refused)
    with pytest.raises(SystemExit) as exited:
        main(["docs", "--home", str(tmp_path)])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("error: Permission denied (") and err.endswith("(run again with --debug for the traceback)")
    with pytest.raises(PermissionError):
        main(["docs", "--debug", "--home", str(tmp_path)])
    assert "scripts/setup.sh" in describe_failure(ModuleNotFoundError("No module named 'llama_cpp'", name="llama_cpp"))
    assert describe_failure(KeyError("kq_soft_max")) == "KeyError: 'kq_soft_max'"


def test_config_pipeline_prints_the_stages_in_order_with_their_settings(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "--pipeline", "--home", str(tmp_path), "--set", "query.hyde=true", "--set", "retrieval.links=0"])
    assert result.exit_code == 0, result.output
    heads = [line for line in result.output.splitlines() if line.rstrip().endswith("]")]  # each names its module
    names = [line.split(".", 1)[1].split()[0] for line in heads]
    assert names.index("embed_query") < names.index("hyde") < names.index("search") < names.index("generate") < names.index("cite")
    assert "1 passage(s) by" in result.output and "variants, vectors → dense, hyde_used" in result.output
    assert "title links" not in result.output  # off: not in the pipeline
    assert "Off: decompose (query.decompose=rules)" in result.output
    assert "abstain below cosine 0.79 (multilingual-e5-small-q4's)" in result.output  # the default embedder's floor
    pinned = runner.invoke(app, ["config", "--pipeline", "--home", str(tmp_path), "--set", "retrieval.min_relevance=0.3"])
    assert "abstain below cosine 0.3 " in pinned.output
    assert ". hyde " not in pinned.output and "hyde (query.hyde=true)" in pinned.output
