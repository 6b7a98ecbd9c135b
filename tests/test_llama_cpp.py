"""The llama.cpp runtime with the real bundled models: chat template, streaming, stops, attention, a real server.

Unit tests first (no model loads); the rest are marked integration. The joined Qwen file and the dequantised SmolLM2 copy live in one model cache for the
whole module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.models.base import Message, ModelError
from assistant.models.llama_cpp import LlamaCppGenerator
from assistant.models.registry import create_generator
from assistant.ordering import ContextOrderer
from assistant.prompts import STOP, build_messages, source_blocks
from assistant.types import Hit, Trace

integration = pytest.mark.integration

HITS = [
    Hit("a", "The Kelvaro lighthouse was built in 1874 from grey granite.", 1.0, "kelvaro.md", "a", "a", "Kelvaro lighthouse"),
    Hit("b", "The Sable Wren is a research vessel launched by the Orrin Institute in 2011.", 0.9, "wren.md", "b", "b", "Sable Wren"),
    Hit("c", "Tickets to the harbour museum are free on Sundays.", 0.8, "museum.md", "c", "c", "Harbour museum"),
]


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="context_tokens"):
        LlamaCppGenerator(Path("m.gguf"), "m", context_tokens=10)
    with pytest.raises(ValueError, match="threads"):
        LlamaCppGenerator(Path("m.gguf"), "m", threads=0)


def test_the_model_file_is_resolved_on_first_use_only(tmp_path: Path) -> None:
    calls: list[int] = []

    def join() -> Path:
        calls.append(1)
        return tmp_path / "missing.gguf"

    generator = LlamaCppGenerator(join, "lazy")
    assert generator.threads >= 1 and not calls
    with pytest.raises(ModelError, match="does not exist"):
        generator.generate([Message("user", "hi")])
    assert calls == [1]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("llama-home"))


@pytest.fixture(scope="module")
def qwen(settings: Settings) -> LlamaCppGenerator:
    generator = create_generator(settings, "qwen2.5-coder-0.5b")
    assert isinstance(generator, LlamaCppGenerator)
    return generator


@integration
def test_qwen_answers_from_its_source_with_a_citation(qwen: LlamaCppGenerator) -> None:
    answer = qwen.generate(build_messages("Who launched the Sable Wren?", HITS), max_new_tokens=48, stop=STOP)
    # The 0.5B model sometimes answers with the marker alone ("[2]"): the right source either way.
    assert "[2]" in answer and "[1]" not in answer and "[3]" not in answer, answer
    assert "Orrin" in answer or answer.strip() == "[2]", answer


@integration
def test_prompt_uses_the_files_chat_template(qwen: LlamaCppGenerator) -> None:
    prompt = qwen.render([Message("system", "S"), Message("user", "U")])
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    tokens = qwen.tokenize(prompt)
    assert tokens[0] == qwen.load().tokenize(b"<|im_start|>", add_bos=False, special=True)[0]
    assert len(tokens) < 20  # control tokens parsed as single tokens, not spelled out


@integration
def test_stream_equals_generate_and_stops_cut(qwen: LlamaCppGenerator) -> None:
    messages = [Message("user", "Count from 1 to 20, separated by commas.")]
    whole = qwen.generate(messages, max_new_tokens=40)
    assert "".join(qwen.stream(messages, max_new_tokens=40)) == whole
    cut = qwen.generate(messages, max_new_tokens=40, stop=["5"])
    assert "5" not in cut and whole.startswith(cut)


@integration
def test_an_overlong_prompt_is_a_clear_error(settings: Settings) -> None:
    small = LlamaCppGenerator(create_generator(settings, "qwen2.5-coder-0.5b").path, "small", context_tokens=256)
    with pytest.raises(ModelError, match="context window of 256"):
        small.generate([Message("user", "word " * 400)])


@integration
def test_a_sliding_window_model_answers_a_repeated_prompt_the_same_way(settings: Settings) -> None:
    # Gemma 3's sliding-window cache: reusing the previous prompt's cached prefix changed greedy answers.
    gemma = create_generator(settings, "gemma3-270m")
    messages = build_messages("Who launched the Sable Wren?", HITS)
    first = gemma.generate(messages, max_new_tokens=24)
    assert gemma.generate([Message("user", "Say something else.")], max_new_tokens=8) is not None
    assert [gemma.generate(messages, max_new_tokens=24) for _ in range(2)] == [first, first]


@integration
def test_models_load_without_amx_weight_buffers_where_the_build_has_amx(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llama_cpp
    import llama_cpp.llama as llama_module

    import assistant.models.llama_cpp as runtime

    default = llama_module.llama_cpp.llama_model_default_params
    monkeypatch.setattr(runtime, "amx_in_build", lambda: True)  # the condition seen on an AMX CPU
    generator = LlamaCppGenerator(create_generator(settings, "qwen2.5-coder-0.5b").path, "no-amx")
    assert generator.load().model_params.use_extra_bufts is False
    assert generator.generate([Message("user", "Say yes.")], max_new_tokens=4)
    assert llama_module.llama_cpp.llama_model_default_params is default  # restored after the load
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True


@integration
def test_attention_sorting_runs_on_llama_cpp(qwen: LlamaCppGenerator) -> None:
    question = "Who launched the Sable Wren?"

    def prompt_for(hits):
        return build_messages(question, hits), source_blocks(hits)

    trace = Trace()
    ordered = ContextOrderer("attention").arrange(HITS, qwen, prompt_for, trace)
    info = trace.stages[0].details
    assert info["ran"] == "attention"
    scores = info["rounds"][0]
    assert set(scores) == {"a", "b", "c"} and all(0 < s < 1 for s in scores.values())
    assert ordered[-1].unit_id == max(scores, key=scores.get)


@integration
def test_llama_cpp_attention_matches_transformers_on_the_same_weights(settings: Settings) -> None:
    """The kq_soft_max rows read from llama.cpp's graph measure what the transformers path measures."""
    messages = build_messages("Who launched the Sable Wren?", HITS)
    blocks = source_blocks(HITS)
    ours = create_generator(settings, "smollm2-135m")
    theirs = create_generator(
        settings.model_copy(update={"models": settings.models.model_copy(update={"runtime": "transformers"})}),
        "smollm2-135m",
    )
    a, b = ours.source_attention(messages, blocks), theirs.source_attention(messages, blocks)
    assert sorted(range(3), key=a.__getitem__) == sorted(range(3), key=b.__getitem__), (a, b)
    assert max(abs(x - y) for x, y in zip(a, b)) < 0.25 * max(b), (a, b)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@integration
def test_openai_generator_against_a_real_llama_cpp_server(qwen: LlamaCppGenerator, tmp_path: Path) -> None:
    """The OpenAI-compatible path against llama-cpp-python's own server process, on loopback."""
    pytest.importorskip("sse_starlette", reason="llama_cpp.server needs llama-cpp-python[server] (scripts/setup.sh)")
    from assistant.models.openai_compat import OpenAIGenerator

    port = _free_port()
    # llama_cpp.server, with the guard Tessera's own loads use (an AMX build crashed in its first matrix product).
    launcher = (
        "import runpy\nfrom assistant.models.llama_cpp import without_amx_weight_buffers\n"
        "with without_amx_weight_buffers():\n    runpy.run_module('llama_cpp.server', run_name='__main__')"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", launcher, "--model", str(qwen.path), "--model_alias", "qwen-local",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--verbose", "False"],
        # A file, not a pipe: an unread pipe fills with llama.cpp's log and blocks the server.
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "server.log").open("w"), env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        remote = OpenAIGenerator("qwen-local", f"http://127.0.0.1:{port}/v1", api_key="", timeout=60)
        deadline = time.monotonic() + 180
        while True:
            try:
                answer = remote.generate(build_messages("Who launched the Sable Wren?", HITS), max_new_tokens=32)
                break
            except ModelError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "server.log").read_text()[-2000:])
                time.sleep(1)
        # The server renders the same chat template over the same weights: the same source is cited.
        assert "[2]" in answer and "[1]" not in answer and "[3]" not in answer, answer
        pieces = list(remote.stream([Message("user", "Say hello.")], max_new_tokens=8))
        assert len(pieces) >= 1 and "".join(pieces).strip()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    # The server gone: a clear error naming the setting, never a silent fallback to another model.
    with pytest.raises(ModelError, match="could not reach the endpoint.*openai_base_url"):
        remote.generate([Message("user", "x")], max_new_tokens=2)


def test_native_notices_are_silenced_and_stderr_restored(capfd: pytest.CaptureFixture[str]) -> None:
    from assistant.models.native_output import quiet_native_output

    with quiet_native_output():
        os.write(2, b"llama.cpp notice\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "llama.cpp notice" not in err and "after" in err


@integration
def test_a_process_that_used_the_model_exits_without_a_teardown_traceback(settings: Settings) -> None:
    # llama-cpp-python's Llama.__del__ at interpreter shutdown used to print "Exception ignored in ...
    # 'NoneType' object is not callable" after a command whose model outlived the modules (ragas' judge).
    script = (
        "from pathlib import Path\n"
        "from assistant.config import Settings\n"
        "from assistant.models.registry import create_embedder, create_generator\n"
        "from eval.ragas_metrics import RagasEvaluator, RagasSample\n"
        f"s = Settings(home=Path({str(settings.home)!r}))\n"
        "judge = create_generator(s, 'qwen2.5-coder-0.5b')\n"
        "ev = RagasEvaluator(create_embedder(s), judge, skip={'faithfulness': '-'}, judge_max_new_tokens=48)\n"
        "print(ev.score([RagasSample('Who won?', 'Bob won the race.', ['Bob won the race.'])]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
