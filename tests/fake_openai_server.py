"""A tiny real OpenAI-compatible HTTP server for tests: streams queued replies and records requests.

It serves ``POST /v1/chat/completions`` with server-sent events on 127.0.0.1 (a free port), from a
background thread. Each request takes the next queued action: a reply streamed word by word, an HTTP
error, raw SSE lines (for malformed streams) or a stall. With the queue empty it streams ``default``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"


@dataclass
class RecordedRequest:
    """One request as the server saw it (header names lower-cased)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Action:
    kind: str  # "reply" | "error" | "raw" | "stall"
    text: str = ""
    status: int = 200
    lines: Sequence[str] = ()
    seconds: float = 0.0


@dataclass
class FakeOpenAIServer:
    """Start with ``with FakeOpenAIServer() as server:``; point clients at `base_url`."""

    default: str = "OK"
    requests: list[RecordedRequest] = field(default_factory=list)
    _actions: list[_Action] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    # -- scripting -----------------------------------------------------------------------------------
    def enqueue(self, *replies: str) -> None:
        """Queues replies, each streamed word by word as ``delta.content`` chunks."""
        self._push(*(_Action("reply", text=r) for r in replies))

    def fail_next(self, status: int, message: str = "something went wrong") -> None:
        """Makes the next request answer ``status`` with an OpenAI-style ``{"error": {"message": ...}}``."""
        self._push(_Action("error", status=status, text=message))

    def send_raw_next(self, *lines: str) -> None:
        """Makes the next request stream exactly these SSE lines (for malformed streams)."""
        self._push(_Action("raw", lines=lines))

    def stall_next(self, seconds: float) -> None:
        """Makes the next request wait ``seconds`` before sending anything, then stream `default`."""
        self._push(_Action("stall", seconds=seconds))

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAIServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    def _push(self, *actions: _Action) -> None:
        with self._lock:
            self._actions.extend(actions)

    def _next(self) -> _Action:
        with self._lock:
            return self._actions.pop(0) if self._actions else _Action("reply", text=self.default)


def _chunk(model: str, content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    event = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return "data: " + json.dumps(event)


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: the body ends when the connection closes, so streaming needs no chunked encoding.
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(RecordedRequest(self.path, headers, body))
            if self.path != CHAT_PATH:
                self._json(404, {"error": {"message": f"no route for {self.path}", "type": "not_found"}})
                return
            action = server._next()
            if action.kind == "error":
                self._json(action.status, {"error": {"message": action.text, "type": "fake_error"}})
                return
            if action.kind == "stall":
                time.sleep(action.seconds)
                action = _Action("reply", text=server.default)
            model = str(body.get("model", ""))
            if action.kind == "raw":
                lines = list(action.lines)
            else:
                role = "data: " + json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})
                pieces = [_chunk(model, p) for p in re.findall(r"\S+\s*|\s+", action.text)]
                lines = [role, *pieces, _chunk(model, None, "stop"), "data: [DONE]"]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for line in lines:
                    self.wfile.write((line + "\n\n").encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (a stop sequence, a timeout)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
