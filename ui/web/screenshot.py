"""A screenshot of the web chat answering a question: ``python -m ui.web.screenshot OUT.png --home DIR
--question "..."``. Serves the Tessera home ``DIR`` (its settings and models, as ``tessera web`` would) on a
free local port, asks in headless Chromium, waits for the answer to finish, opens its first source and saves
a 1280x800 PNG."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
LOADED = "(document.querySelector('#session-info')?.innerText || '').includes('session')"
FINISHED = "document.querySelector('#answer-status [data-done]') !== null"


def free_port() -> int:
    """A TCP port nobody is listening on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def capture(browser: Any, url: str, out: Path, question: str, *, timeout_s: float = 600, size: tuple[int, int] = (1280, 800)) -> None:
    """Opens ``url`` in a new page of a Playwright ``browser``, asks ``question``, opens the first source, saves ``out``."""
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    try:
        page.goto(url)
        page.wait_for_function(LOADED, timeout=60_000)
        page.fill("#question textarea", question)
        page.press("#question textarea", "Enter")
        page.wait_for_function(FINISHED, timeout=timeout_s * 1000)
        first = page.locator("#source-pick label").first
        if first.count():
            first.click()
            page.wait_for_timeout(300)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.web.screenshot", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--home", type=Path, required=True, help="a Tessera home with documents ingested")
    parser.add_argument("--question", required=True, help="what to ask")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the Chromium binary (default {CHROMIUM})")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the answer")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from assistant.config import Settings
    from assistant.backend import ChatBackend
    from ui.web import serve

    backend = ChatBackend(Settings(home=args.home))
    port = free_port()
    app = serve(backend, port=port, block=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
            try:
                capture(browser, f"http://127.0.0.1:{port}/", args.out, args.question, timeout_s=args.timeout)
            finally:
                browser.close()
    finally:
        app.close()
        backend.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
