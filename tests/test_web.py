"""The Gradio web chat (`ui.web`) in headless Chromium, over fake models, an embedded store and memory.

Screenshots go to ``tests/artifacts/``. Skipped where Debian's ``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from assistant.assistant import Assistant
from assistant.config import Settings
from assistant.models.base import Message
from assistant.models.fake import FakeEmbedder, FakeGenerator
from retrievers.store import open_store
from assistant.backend import ChatBackend
from ui.web import serve
from ui.web.screenshot import FINISHED, LOADED, free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
ROOT = Path(__file__).resolve().parent.parent
REPLY = "Lake Baikal is the deepest lake [1]."
TIMEOUT_MS = 60_000  # generous: the machine's cores are shared

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Chromium at {CHROMIUM} (apt install chromium)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing", "ignore:.*(no_silent_downcasting|copy keyword)"),
]


class SlowGenerator(FakeGenerator):
    """A fake that pauses between words, so the answer visibly streams in."""

    def __init__(self, default: str, delay: float = 0.15) -> None:
        super().__init__(default=default)
        self.delay = delay

    def _stream(self, messages: Sequence[Message], max_new_tokens: int, temperature: float) -> Iterator[str]:
        for piece in super()._stream(messages, max_new_tokens, temperature):
            time.sleep(self.delay)
            yield piece


@contextmanager
def isolated_env(cwd: Path) -> Iterator[None]:
    """No TESSERA_* variables and no tessera.toml of the developer's leak into the settings."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("TESSERA_"):
                mp.delenv(key)
        mp.chdir(cwd)
        yield


@contextmanager
def running(tmp: Path, *, auth: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, ChatBackend, FakeGenerator]]:
    """A served app over fakes (memory on), two small documents ingested; yields its URL, backend and generator."""
    corpus = tmp / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep. It lies in Siberia.\n")
    (corpus / "towers.md").write_text("# Towers\nThe Eiffel Tower is in Paris and is 330 metres tall.\n")
    with isolated_env(tmp):
        settings = Settings(home=tmp / "home")
    settings = settings.model_copy(update={"context": settings.context.model_copy(update={"order": "retrieval"})})  # predictable [n]
    assert settings.memory.enabled
    generator = SlowGenerator(REPLY)
    assistant = Assistant(settings, embedder=FakeEmbedder(64), generator=generator, store=open_store(settings))
    backend = ChatBackend(settings, assistant=assistant)
    backend.ingest([corpus], progress=False)
    port = free_port()
    app = serve(backend, port=port, auth=auth, block=False)
    try:
        yield f"http://127.0.0.1:{port}/", backend, generator
    finally:
        app.close()
        backend.close()


expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (the dev extra)").expect
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ChatBackend, FakeGenerator]]:
    with running(tmp_path_factory.mktemp("web")) as served:
        yield served


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server[0])
    page.wait_for_function(LOADED)
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def ask(page, question: str) -> None:
    """Asks and waits until the answer has finished (the status line marks the turn done, error or not)."""
    turn = count(page, "user") + 1
    page.fill("#question textarea", question)
    page.press("#question textarea", "Enter")
    page.wait_for_selector(f"#answer-status [data-done='{turn}']", state="attached")


def count(page, role: str) -> int:
    return page.locator(f"#chat [data-testid={role}]").count()


def bot_texts(page) -> list[str]:
    return page.locator("#chat [data-testid=bot]").all_inner_texts()


def session_of(page) -> str:
    page.wait_for_function(LOADED)
    return page.inner_text("#session-info").rsplit(" ", 1)[-1]


def test_cited_answer_streams_in(page, server) -> None:
    page.fill("#question textarea", "How deep is Lake Baikal?")
    page.press("#question textarea", "Enter")
    # Part of the answer is on the page before its citation has arrived: it streams.
    page.wait_for_function(
        """() => { const b = document.querySelectorAll('#chat [data-testid=bot]');
                   const t = b.length ? b[b.length - 1].innerText : '';
                   return t.includes('Lake') && !t.includes('[1]'); }"""
    )
    page.wait_for_function(FINISHED)
    assert bot_texts(page)[-1].strip() == REPLY
    assert page.locator("#chat [data-testid=user]").all_inner_texts() == ["How deep is Lake Baikal?"]
    assert page.input_value("#question textarea") == ""
    assert "[1] lakes.md § Lakes" in page.inner_text("#source-pick")
    shot(page, "web-chat-answer.png")
    page.click("#why")  # "why this answer"
    trace = page.locator("#trace")
    for expected in ("Query variants", "How deep is Lake Baikal?", "Fused hits (hybrid)", "Context order: retrieval", "Timings", "generate"):
        assert expected in trace.inner_text(), expected


def test_opening_a_source_shows_its_highlighted_passage(page, server) -> None:
    server[2].enqueue("The Eiffel Tower is 330 metres tall [1]. Lake Baikal is the deepest lake [2].")
    ask(page, "How tall is the Eiffel Tower, and how deep is Lake Baikal?")
    labels = page.locator("#source-pick label").all_inner_texts()
    assert [label.strip() for label in labels] == ["[1] towers.md § Towers", "[2] lakes.md § Lakes"]
    first = page.inner_html("#sources .source.selected .passage")
    assert "<mark>The Eiffel Tower is in Paris and is 330 metres tall.</mark>" in first
    page.locator("#source-pick label").nth(1).click()
    expect(page.locator("#sources .source.selected")).to_have_attribute("data-n", "2")
    passage = page.inner_html("#sources .source.selected .passage")
    assert "<mark>Lake Baikal is the deepest lake in the world, 1,642 metres deep.</mark> It lies in Siberia." in passage
    assert "Eiffel" not in passage
    shot(page, "web-sources.png")


def test_uploaded_file_is_ingested_and_cited(page, server) -> None:
    url, backend, generator = server
    page.set_input_files(
        "#upload input[type=file]",
        files=[{"name": "okapi.md", "mimeType": "text/markdown",
                "buffer": b"# Okapi\nThe okapi is a giraffid mammal native to the Congo rainforest.\n"}],
    )
    expect(page.locator("#ingest")).to_contain_text("Ingested")
    summary = page.inner_text("#ingest")
    assert "Ingested 1" in summary and "okapi.md" in summary and "failed 0" in summary
    expect(page.locator("#documents")).to_contain_text("okapi.md")
    assert (backend.settings.home / "uploads" / "okapi.md").is_file()
    shot(page, "web-upload.png")
    generator.enqueue("The okapi lives in the Congo rainforest [1].")
    ask(page, "Where does the okapi mammal live?")
    assert "[1] okapi.md § Okapi" in page.inner_text("#source-pick")
    assert "okapi.md" in page.inner_text("#sources") and "giraffid" in page.inner_text("#sources")


def test_upload_of_an_unsupported_file_says_why(page, server) -> None:
    page.set_input_files("#upload input[type=file]", files=[{"name": "data.xyz", "mimeType": "application/octet-stream", "buffer": b"\x00\x01"}])
    expect(page.locator("#ingest")).to_contain_text("failed 1")
    assert "data.xyz" in page.inner_text("#ingest") and "failed 1" in page.inner_text("#ingest")


def test_deleting_a_document(page, server) -> None:
    url, backend, _ = server
    towers = next(d.source for d in backend.documents() if d.source.endswith("towers.md"))
    page.locator("#documents [role=gridcell]").get_by_text("towers.md").click()  # selecting a row picks it
    expect(page.locator("#doc-pick input")).to_have_value("towers.md")  # shown by name; deleted by path
    page.click("#delete")
    expect(page.locator("#ingest")).to_contain_text("Removed towers.md")
    assert towers not in [d.source for d in backend.documents()]
    expect(page.locator("#documents")).not_to_contain_text("towers.md")
    backend.ingest([Path(towers)], progress=False)  # put it back for the other tests


def test_browser_contexts_are_separate_sessions(browser, server) -> None:
    url, backend, _ = server
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        pages.append(context.new_page())
        pages[-1].set_default_timeout(TIMEOUT_MS)
        pages[-1].goto(url)
        pages[-1].wait_for_function(LOADED)
    a, b = pages
    try:
        ask(a, "How deep is Lake Baikal?")
        assert count(b, "user") == 0 and count(b, "bot") == 0
        ask(b, "How tall is the Eiffel Tower?")
        assert a.locator("#chat [data-testid=user]").all_inner_texts() == ["How deep is Lake Baikal?"]
        assert b.locator("#chat [data-testid=user]").all_inner_texts() == ["How tall is the Eiffel Tower?"]
        session_a, session_b = session_of(a), session_of(b)
        assert session_a != session_b
        assert [q for q, _ in backend.chat("default", session_a).exchanges] == ["How deep is Lake Baikal?"]
        assert [q for q, _ in backend.chat("default", session_b).exchanges] == ["How tall is the Eiffel Tower?"]
        assert {session_a, session_b} <= set(backend.sessions("default"))
    finally:
        for p in pages:
            p.context.close()


def test_new_chat_starts_an_empty_session(page, server) -> None:
    before = session_of(page)
    ask(page, "How deep is Lake Baikal?")
    page.click("#new-chat")
    expect(page.locator("#session-info")).not_to_contain_text(before)
    assert count(page, "user") == 0 and "Ask a question" in page.inner_text("#sources")
    assert session_of(page) != before


def test_tab_settings_and_errors_stay_on_the_page(page, server) -> None:
    page.click("#settings")
    page.click("#opt-hybrid input")  # dense only, for this tab
    ask(page, "How deep is Lake Baikal?")
    page.click("#why")
    assert "Fused hits (dense)" in page.inner_text("#trace")
    page.fill("#opt-model input", "no-such-model")  # a typed name is not one of the offered generators...
    page.keyboard.press("Enter")
    ask(page, "How deep is Lake Baikal?")
    reply = bot_texts(page)[-1]
    assert not reply.startswith("⚠") and "deepest" in reply  # ...so the configured one answers
    assert page.input_value("#opt-model input") != "no-such-model"


def test_login_required_with_auth(browser, tmp_path: Path) -> None:
    with running(tmp_path, auth=[("ana", "pw")]) as (url, backend, _):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(url)
            page.wait_for_selector("input[type=password]")
            assert page.locator("#question").count() == 0
            page.fill("input[data-testid=textbox]", "ana")
            page.fill("input[type=password]", "wrong")
            page.click("button:has-text('Login')")
            page.wait_for_selector("text=Incorrect Credentials")
            assert page.locator("#question").count() == 0
            page.fill("input[data-testid=textbox]", "ana")
            page.fill("input[type=password]", "pw")
            page.click("button:has-text('Login')")
            page.wait_for_function(LOADED)
            assert session_of(page) and page.inner_text("#session-info").startswith("ana ·")
            ask(page, "How deep is Lake Baikal?")
            assert bot_texts(page)[-1].strip() == REPLY
            assert backend.sessions("ana") and not backend.sessions("default")
        finally:
            context.close()


def test_screenshot_script(tmp_path: Path) -> None:
    """`python -m ui.web.screenshot` over a home configured for the fake models (as the real ones would be)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(TESSERA_MODELS__EMBEDDER="fake", TESSERA_MODELS__GENERATOR=f"fake:{REPLY}", TESSERA_CONFIG=str(tmp_path / "none.toml"))
    home, corpus = tmp_path / "home", tmp_path / "docs"
    corpus.mkdir()
    (corpus / "lakes.md").write_text("# Lakes\nLake Baikal is the deepest lake in the world, 1,642 metres deep.\n")
    ingest = "from pathlib import Path; from assistant.config import Settings; from assistant.backend import ChatBackend; " \
             f"b = ChatBackend(Settings(home=Path({str(home)!r}))); b.ingest([Path({str(corpus)!r})], progress=False); b.close()"
    subprocess.run([sys.executable, "-c", ingest], cwd=ROOT, env=env, check=True, timeout=300)
    out = tmp_path / "shot.png"
    result = subprocess.run(
        [sys.executable, "-m", "ui.web.screenshot", str(out), "--home", str(home), "--question", "How deep is Lake Baikal?", "--timeout", "120"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(out.read_bytes()[16:20], "big"), int.from_bytes(out.read_bytes()[20:24], "big")
    assert (width, height) == (1280, 800)


def _lines(page, selector: str) -> float:
    """How many text lines an element's box holds (its height over its line height)."""
    return page.evaluate(
        """(sel) => { const el = document.querySelector(sel);
                      const lh = parseFloat(getComputedStyle(el).lineHeight) || 1.2 * parseFloat(getComputedStyle(el).fontSize);
                      return el.getBoundingClientRect().height / lh; }""",
        selector,
    )


@pytest.mark.parametrize("width", [1280, 390])
def test_layout_stays_readable_on_a_desktop_and_a_phone(browser, server, width: int) -> None:
    context = browser.new_context(viewport={"width": width, "height": 844 if width < 500 else 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(server[0])
        page.wait_for_function(LOADED)
        ask(page, "How deep is Lake Baikal?")
        assert _lines(page, "#title h2") < 1.6  # "Tessera" on one line, never "Tesse / ra"
        headers = page.locator("#documents th")
        assert headers.count() >= 4
        for i in range(headers.count()):  # no header broken mid-word ("passag es")
            if width < 640 and i == 2:
                assert not headers.nth(i).is_visible()  # a phone leaves out the facts count
                continue
            box = headers.nth(i).bounding_box()
            assert box is not None and box["height"] < 48, headers.nth(i).inner_text()
        page.locator("#documents").scroll_into_view_if_needed()
        clipped = page.evaluate(  # text cut off ("pas...", by CSS or by the table's own truncation)
            r"""() => [...document.querySelectorAll('#documents th, #documents [role=gridcell]')]
                     .filter(c => c.offsetParent !== null)
                     .flatMap(c => [c, ...c.querySelectorAll('*')])
                     .filter(e => e.textContent.trim() && getComputedStyle(e).display !== 'none'
                             && (e.scrollWidth > e.clientWidth + 1 || /(\.\.\.|…)$/.test(e.textContent.trim())))
                     .map(e => [e.textContent.trim(), e.tagName, e.className, e.scrollWidth, e.clientWidth])"""
        )
        assert clipped == [], clipped
        page.screenshot(path=str(ARTIFACTS / f"web-{width}-documents.png"))  # the viewport, as a reader sees it
        rows = int(page.get_attribute("#documents [role=grid]", "aria-rowcount") or 0) - 1  # less the header
        assert rows == len(server[1].documents())
        names = page.locator("#documents [role=gridcell]").all_inner_texts()
        assert "lakes.md" in names and not any("/" in n for n in names)  # names, not paths (the folder is a tooltip)
        page.screenshot(path=str(ARTIFACTS / f"web-{width}.png"), full_page=True)
        assert (ARTIFACTS / f"web-{width}.png").stat().st_size > 0
    finally:
        context.close()


def test_an_earlier_chat_can_be_reopened_and_continued(page, server) -> None:
    ask(page, "How deep is Lake Baikal?")
    first = session_of(page)
    page.click("#new-chat")
    expect(page.locator("#session-info")).not_to_contain_text(first)
    ask(page, "How tall is the Eiffel Tower?")
    page.click("#chats-box")
    entry = page.locator("#chats label", has_text="How deep is Lake Baikal?").first
    entry.click()
    expect(page.locator("#session-info")).to_contain_text(first)
    assert count(page, "user") == 1 and "Baikal" in page.inner_text("#chat")
    assert "Eiffel" not in page.inner_text("#chat")
    ask(page, "And how old is it?")  # continues that session
    assert session_of(page) == first and count(page, "user") == 2
