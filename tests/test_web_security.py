"""The web app's exposure (`tessera web`, `ui.web`): loopback by default, logins enforced on every route, an
upload size limit, and no secret (a login password, the OpenAI API key) in any log line or output."""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from assistant import cli
from ui.web import serve
from ui.web.screenshot import free_port

from processes import interruptible, stop

try:  # tests/ on sys.path (pytest's rootdir insertion) or the repo root (python -m pytest)
    from fake_openai_server import FakeOpenAIServer
except ImportError:  # pragma: no cover
    from tests.fake_openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "S3CRET-PASS-4521"
WRONG = "WR0NG-PASS-9873"
API_KEY = "sk-S3CRET-KEY-7731"
REPLY = "Lake Baikal is the deepest lake [1]."
# The app under test logs everything at DEBUG (root logger) to stderr, as a developer chasing a bug would.
LAUNCH = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, "
    "format='%(levelname)s %(name)s %(message)s'); from assistant.cli import main; sys.argv[0] = 'tessera'; main()"
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


def test_serve_and_the_cli_bind_loopback_by_default(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    calls: list[dict[str, Any]] = []

    class Backend:
        def __init__(self, *_: Any) -> None: ...

        def close(self) -> None: ...

    monkeypatch.setattr("ui.web.serve", lambda backend, **kw: calls.append(kw))
    monkeypatch.setattr("assistant.backend.ChatBackend", Backend)
    runner = CliRunner()
    home = ["--home", str(settings.home)]
    assert "127.0.0.1" in runner.invoke(cli.app, ["web", "--help"]).output
    result = runner.invoke(cli.app, ["web", *home])
    assert result.exit_code == 0 and calls[-1]["host"] == "127.0.0.1" and calls[-1]["auth"] is None
    assert "warning" not in result.output
    result = runner.invoke(cli.app, ["web", *home, "--host", "0.0.0.0"])
    assert calls[-1]["host"] == "0.0.0.0" and "without --auth: anyone who can reach it can use it" in result.output
    result = runner.invoke(cli.app, ["web", *home, "--host", "0.0.0.0", "--auth", f"ana:{PASSWORD}"])
    assert calls[-1]["auth"] == [("ana", PASSWORD)] and "warning" not in result.output
    assert PASSWORD not in result.output


def _listening_addresses(port: int) -> set[str]:
    """The local addresses listening on ``port`` (IPv4 and IPv6), from /proc/net."""
    found = set()
    for table, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port and len(address) == size:
                if size == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    found.add(address)
    return found


@pytest.fixture
def served(tmp_path: Path):
    """``tessera web --auth ana:PASSWORD --max-upload-mb 0.01`` with the OpenAI generator and its key, logging at
    DEBUG; yields (url, process, fake OpenAI server, home); the process's output is at ``process.output`` afterwards."""
    home, corpus = tmp_path / "home", tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    with FakeOpenAIServer(default=REPLY) as openai:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "OPENAI_"))}
        env.update(
            TESSERA_HOME=str(home), TESSERA_CONFIG=str(tmp_path / "none.toml"), TESSERA_MODELS__EMBEDDER="fake",
            TESSERA_MODELS__GENERATOR="openai:test-model", TESSERA_MODELS__OPENAI_BASE_URL=openai.base_url,
            TESSERA_MODELS__OPENAI_API_KEY=API_KEY,
        )
        ingest = subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", str(corpus)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=180)
        assert ingest.returncode == 0, ingest.stderr
        port = free_port()
        args = ["web", "--port", str(port), "--auth", f"ana:{PASSWORD}", "--max-upload-mb", "0.01"]
        process = subprocess.Popen([sys.executable, "-c", LAUNCH, *args], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, process.communicate()
                try:
                    if httpx.get(url + "/", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "tessera web did not start within 180 s"
                time.sleep(0.5)
            yield url, process, openai, home
        finally:
            _, out, err = stop(process)
            process.output = out + err  # type: ignore[attr-defined]


def test_auth_upload_limit_and_no_secrets_in_logs(served) -> None:
    from gradio_client import Client

    url, process, openai, home = served
    port = int(url.rsplit(":", 1)[1])
    assert _listening_addresses(port) == {"127.0.0.1"}  # loopback only, not 0.0.0.0

    # Without a login every route but the login page itself is refused.
    assert "<html" in httpx.get(url + "/").text
    for method, path in [("GET", "/config"), ("GET", "/gradio_api/info"), ("POST", "/gradio_api/call/ask"),
                         ("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/upload"),
                         ("GET", "/gradio_api/file=/etc/passwd")]:
        response = httpx.request(method, url + path, json={} if method == "POST" else None)
        assert response.status_code == 401, (path, response.status_code)
    assert httpx.post(url + "/login", data={"username": "ana", "password": WRONG}).status_code == 400
    with pytest.raises(Exception):
        Client(url + "/", auth=("ana", WRONG), verbose=False)

    # Signed in: an upload over the limit is refused with a clear message; one under it is accepted.
    with httpx.Client(base_url=url) as browser:
        assert browser.post("/login", data={"username": "ana", "password": PASSWORD}).status_code == 200
        big = browser.post("/gradio_api/upload", files={"files": ("big.md", b"x" * 20_000, "text/markdown")})
        assert big.status_code == 413 and "maximum allowed size" in big.text
        assert browser.post("/gradio_api/upload", files={"files": ("small.md", b"# Small\nok\n", "text/markdown")}).status_code == 200
        for private in ("/etc/passwd", str(home / "docstore.sqlite3")):  # Gradio serves only its own files
            assert browser.get(f"/gradio_api/file={private}").status_code == 403, private

    # A chat over the OpenAI generator (the key is sent), then one whose endpoint fails (logged with a traceback).
    client = Client(url + "/", auth=("ana", PASSWORD), verbose=False)
    try:
        result = client.predict("How deep is Lake Baikal?", [], True, False, "off", True, 4, "openai:test-model", api_name="/ask")
        assert REPLY in str(result[0][-1]["content"])
        openai.fail_next(500, "upstream exploded")  # the answer's request (a question that stands alone is not rewritten)
        result = client.predict("How deep is Lake Baikal now?", result[0], True, False, "off", True, 4, "openai:test-model", api_name="/ask")
        assert "⚠" in str(result[0][-1]["content"])
    finally:
        client.close()
    assert any(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in openai.requests)

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    process.output = out + err
    logged = process.output
    if os.environ.get("TESSERA_DUMP_LOGS"):
        Path(os.environ["TESSERA_DUMP_LOGS"]).write_text(logged)
    assert "DEBUG" in logged and "web request failed" in logged  # logging really was on, errors were logged
    for secret in (PASSWORD, WRONG, API_KEY):
        assert secret not in logged, f"{secret} leaked into the logs"
