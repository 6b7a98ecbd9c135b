"""`OpenAIGenerator` against a real local HTTP server speaking the streaming chat completions protocol."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from assistant.models.base import Message, ModelError
from assistant.models.openai_compat import OpenAIGenerator

try:  # tests/ on sys.path (pytest's rootdir insertion) or the repo root (python -m pytest)
    from fake_openai_server import FakeOpenAIServer
except ImportError:  # pragma: no cover
    from tests.fake_openai_server import FakeOpenAIServer

KEY = "sk-test-secret-123"
QUESTION = [Message("system", "Answer briefly."), Message("user", "What is the capital of France?")]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
def gen(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIGenerator:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return OpenAIGenerator("test-model", server.base_url, api_key=KEY, timeout=2.0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- streaming ------------------------------------------------------------------------------------------
def test_streamed_pieces_join_to_the_reply(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    server.enqueue("Paris is the capital [1].")
    pieces = list(gen.stream(QUESTION))
    assert len(pieces) > 1
    assert "".join(pieces) == "Paris is the capital [1]."


def test_generate_equals_joined_stream(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    server.enqueue("Alpha beta gamma.", "Alpha beta gamma.")
    assert gen.generate(QUESTION) == "".join(gen.stream(QUESTION)) == "Alpha beta gamma."


def test_stop_sequences_cut_the_text(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    server.enqueue("Paris [1].\nQuestion: and Spain?", "Paris [1].\nQuestion: and Spain?")
    assert gen.generate(QUESTION, stop=["\nQuestion:"]) == "Paris [1]."
    assert "".join(gen.stream(QUESTION, stop=["Spain"])) == "Paris [1].\nQuestion: and "


def test_name_and_repr_hide_the_key(gen: OpenAIGenerator) -> None:
    assert gen.name == "openai:test-model"
    assert KEY not in repr(gen)


# -- the request ------------------------------------------------------------------------------------
def test_request_carries_model_messages_and_sampling(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    gen.generate(QUESTION, max_new_tokens=42, temperature=0.3)
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "max_tokens": 42,
        "temperature": 0.3,
        "stream": True,
    }
    assert req.headers["authorization"] == f"Bearer {KEY}"


def test_no_key_sends_no_authorization(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    OpenAIGenerator("m", server.base_url).generate(QUESTION)
    assert "authorization" not in server.requests[0].headers


def test_key_falls_back_to_openai_api_key(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    OpenAIGenerator("m", server.base_url + "/").generate(QUESTION)  # a trailing slash is fine too
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"
    assert server.requests[0].path == "/v1/chat/completions"


# -- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_says_which_setting(server: FakeOpenAIServer, gen: OpenAIGenerator, status: int) -> None:
    server.fail_next(status, f"Incorrect API key provided: {KEY}")
    with pytest.raises(ModelError, match="refused the key") as info:
        gen.generate(QUESTION)
    message = str(info.value)
    assert "TESSERA_MODELS__OPENAI_API_KEY" in message and "OPENAI_API_KEY" in message
    assert KEY not in message  # scrubbed even though the server echoed it


def test_404_points_at_model_and_base_url(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    server.fail_next(404, "The model `test-model` does not exist.")
    with pytest.raises(ModelError, match="check the model name 'test-model'") as info:
        gen.generate(QUESTION)
    assert "ends with /v1" in str(info.value) and "does not exist" in str(info.value)


def test_wrong_path_is_a_404(server: FakeOpenAIServer) -> None:
    gen = OpenAIGenerator("m", server.base_url.removesuffix("/v1"), api_key="")
    with pytest.raises(ModelError, match="ends with /v1"):
        gen.generate(QUESTION)


def test_other_http_errors_carry_the_server_message(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    server.fail_next(500, "CUDA out of memory")
    with pytest.raises(ModelError, match=r"HTTP 500: CUDA out of memory"):
        gen.generate(QUESTION)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["data: {not json"], "not JSON"),
        (['data: {"id": "x"}'], "no 'choices'"),
        (['data: {"choices": [{"delta": {"content": 7}}]}'], "not text"),
        (['data: {"choices": [{"delta": {"content": "Par"}}]}'], "ended before"),
        (["<html>Welcome</html>"], "ended before"),
    ],
)
def test_malformed_stream(server: FakeOpenAIServer, gen: OpenAIGenerator, lines: list[str], expected: str) -> None:
    server.send_raw_next(*lines)
    with pytest.raises(ModelError, match=f"malformed stream.*{expected}"):
        gen.generate(QUESTION)


def test_error_event_mid_stream(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    server.send_raw_next('data: {"choices": [{"delta": {"content": "Pa"}}]}', 'data: {"error": {"message": "boom"}}')
    with pytest.raises(ModelError, match="failed mid-answer: boom"):
        gen.generate(QUESTION)


def test_tolerates_comments_usage_chunks_and_missing_done(server: FakeOpenAIServer, gen: OpenAIGenerator) -> None:
    server.send_raw_next(
        ": keep-alive",
        'data: {"choices": [{"delta": {"content": "Hi"}, "finish_reason": "stop"}]}',
        'data: {"choices": [], "usage": {"total_tokens": 3}}',
    )
    assert gen.generate(QUESTION) == "Hi"


def test_connection_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = OpenAIGenerator("m", f"http://127.0.0.1:{_closed_port()}/v1", api_key=KEY, timeout=2.0)
    with pytest.raises(ModelError, match="could not reach the endpoint.*is the server running") as info:
        gen.generate(QUESTION)
    assert "models.openai_base_url" in str(info.value) and KEY not in str(info.value)


def test_timeout(server: FakeOpenAIServer) -> None:
    server.stall_next(0.6)
    gen = OpenAIGenerator("m", server.base_url, api_key="", timeout=0.1)
    with pytest.raises(ModelError, match="sent nothing for 0.1 s.*request_timeout"):
        gen.generate(QUESTION)


# -- construction -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"model": "", "base_url": "http://x/v1"}, "non-empty model"),
        ({"model": "  ", "base_url": "http://x/v1"}, "non-empty model"),
        ({"model": "m", "base_url": "127.0.0.1:8000/v1"}, "http:// or https://.*'127.0.0.1:8000/v1'"),
        ({"model": "m", "base_url": "ftp://x/v1"}, "http:// or https://"),
        ({"model": "m", "base_url": "http://x/v1", "timeout": 0}, "positive"),
    ],
)
def test_invalid_init(kwargs: dict, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        OpenAIGenerator(**kwargs)
