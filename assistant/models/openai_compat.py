"""A `Generator` that calls an OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, OpenAI).

It speaks the ``/chat/completions`` streaming protocol over plain httpx (no openai SDK). Every failure is a
`ModelError` that says how to fix it; it never falls back to another model, and the API key never appears
in a message or a log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpx

from assistant.models.base import Generator, Message, ModelError

_KEY_HINT = "set TESSERA_MODELS__OPENAI_API_KEY or OPENAI_API_KEY"
_URL_HINT = "set models.openai_base_url (TESSERA_MODELS__OPENAI_BASE_URL)"


class OpenAIGenerator(Generator):
    """Streams chat completions from an OpenAI-compatible endpoint.

    Example:
        >>> gen = OpenAIGenerator("qwen2.5-7b-instruct", "http://127.0.0.1:8000/v1")
        >>> gen.name
        'openai:qwen2.5-7b-instruct'

    Args:
        model: The model name the server knows (``model`` in the request body).
        base_url: The API root including the version, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: Bearer token; ``None`` reads ``OPENAI_API_KEY``. With neither (or an empty string) no
            ``Authorization`` header is sent: local servers usually need none.
        timeout: Seconds to wait to connect and between streamed chunks.

    Raises:
        ValueError: An empty model, a base URL that is not http(s), or a non-positive timeout.
    """

    def __init__(self, model: str, base_url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty model name (for example 'gpt-4o-mini'), got {model!r}")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(
                "base_url must start with http:// or https:// (for example 'http://127.0.0.1:8000/v1'), "
                f"got {base_url!r}"
            )
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.model = model.strip()
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        # An empty OPENAI_API_KEY means "no key", not a bearer token of "".
        self._api_key = api_key if api_key is not None else (os.environ.get("OPENAI_API_KEY") or None)
        self.name = f"openai:{self.model}"

    def __repr__(self) -> str:
        # Deliberately leaves the key out.
        return f"OpenAIGenerator(model={self.model!r}, base_url={self.base_url!r}, timeout={self.timeout})"

    @property
    def url(self) -> str:
        """The chat completions URL requests go to."""
        return f"{self.base_url}/chat/completions"

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        payload = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": True,
        }
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            # One client per call: LLM latency dwarfs connection setup, and there is no lifecycle to manage.
            with (
                httpx.Client(timeout=self.timeout) as client,
                client.stream("POST", self.url, json=payload, headers=headers) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    raise ModelError(self._http_error(response))
                yield from self._parse_events(response.iter_lines())
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ModelError(
                f"could not reach the endpoint at {self.url}: is the server running? {_URL_HINT} "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ModelError(
                f"the endpoint at {self.url} sent nothing for {self.timeout:g} s: is the server running and "
                f"the model loaded? raise models.request_timeout for slow models ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise ModelError(
                f"the connection to {self.url} failed mid-request: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc

    def _parse_events(self, lines: Iterable[str]) -> Iterator[str]:
        """Yields ``choices[0].delta.content`` from server-sent ``data:`` lines until ``[DONE]``."""
        finished = False
        for line in lines:
            # SSE: blank lines end an event, ':' lines are comments, other fields (event:, id:) don't matter.
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                raise self._malformed(f"an event is not JSON: {data[:200]!r}") from None
            if not isinstance(event, dict):
                raise self._malformed(f"an event is not a JSON object: {data[:200]!r}")
            if "error" in event:  # vLLM and others report mid-stream failures this way.
                raise ModelError(f"the endpoint at {self.url} failed mid-answer: {self._error_text(event)}")
            choices = event.get("choices")
            if not isinstance(choices, list):
                raise self._malformed(f"an event has no 'choices' list: {data[:200]!r}")
            if not choices:  # e.g. a trailing usage-only chunk
                continue
            choice = choices[0]
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if content is not None and not isinstance(content, str):
                raise self._malformed(f"'delta.content' is not text: {data[:200]!r}")
            if content:
                yield content
            if isinstance(choice, dict) and choice.get("finish_reason"):
                finished = True
        # A clean close after a finish_reason is fine (some servers omit [DONE]); anything else is cut short.
        if not finished:
            raise self._malformed("the stream ended before 'data: [DONE]' (is this an OpenAI-compatible endpoint?)")

    def _http_error(self, response: httpx.Response) -> str:
        status = response.status_code
        detail = self._error_text(response)
        if status in (401, 403):
            sent = "a key" if self._api_key else "no key"
            return (
                f"the endpoint at {self.url} refused the key (HTTP {status}, {sent} sent): {_KEY_HINT} "
                f"(server said: {detail})"
            )
        if status == 404:
            return (
                f"the endpoint at {self.url} answered 404 (model or path not found): check the model name "
                f"{self.model!r} and that models.openai_base_url ends with /v1 (got {self.base_url}); "
                f"server said: {detail}"
            )
        return f"the endpoint at {self.url} answered HTTP {status}: {detail}"

    def _error_text(self, source: httpx.Response | dict[str, Any]) -> str:
        """The server's own error message: OpenAI/vLLM ``error.message``, Ollama ``error``, FastAPI ``detail``."""
        body: Any = source
        if isinstance(source, httpx.Response):
            try:
                body = source.json()
            except ValueError:
                body = source.text
        if isinstance(body, dict):
            err = body.get("error", body.get("detail", body))
            if isinstance(err, dict):
                err = err.get("message", err)
            body = err
        text = body if isinstance(body, str) else json.dumps(body)
        return self._scrub(" ".join(text.split())[:500] or "(empty response body)")

    def _malformed(self, what: str) -> ModelError:
        return ModelError(f"the endpoint at {self.url} sent a malformed stream: {what}")

    def _scrub(self, text: str) -> str:
        # Servers sometimes echo the key back in their error text; never pass it on.
        return text.replace(self._api_key, "***") if self._api_key else text
