"""Helpers for tests that run Tessera as a child process."""

from __future__ import annotations

import signal
import subprocess


def interruptible() -> None:
    """``preexec_fn`` for a child that gets Ctrl+C: a test run started as a background job ignores SIGINT,
    and a child inherits that (Python then installs no KeyboardInterrupt handler), so restore the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(process: subprocess.Popen) -> tuple[int, str, str]:
    """Ctrl+C, as a user would; a kill only if it does not stop within 60 s. Returns ``(code, out, err)``."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err
