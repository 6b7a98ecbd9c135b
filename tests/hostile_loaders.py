"""Loaders that misbehave on purpose, for tests/test_loaders_fuzz.py.

They live in a module of their own because sandboxed loaders run in the parser worker, which imports
them by name (a function defined inside a test could not be sent there).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ingestion.loaders import Extracted


def sleep_forever(data: bytes, path: Path) -> Extracted:
    """A parser stuck in a loop."""
    while True:
        time.sleep(60)


def allocate_forever(data: bytes, path: Path) -> Extracted:
    """A parser that keeps allocating (zero-filled, so the pages are really used)."""
    hoard = []
    while True:
        hoard.append(bytearray(32 * 2**20))


def segfault(data: bytes, path: Path) -> Extracted:
    """A parser whose C code crashes the process."""
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def echo(data: bytes, path: Path) -> Extracted:
    """A well-behaved parser, to show the worker still serves after a bad file."""
    return Extracted(data.decode().strip())


def raise_loader_error(path: str) -> None:
    """A parser refusing a file: its LoaderError must cross the process boundary intact."""
    from ingestion.loaders import LoaderError

    raise LoaderError(path, "bad", "fix it")
