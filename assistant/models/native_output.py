"""Silencing what a native library writes straight to the process's stderr (llama.cpp's load notices)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Silences what llama.cpp writes straight to file descriptor 2 while it loads a model or a context.

    Even with ``verbose=False`` it prints notices there (one about the sliding-window cache on every Gemma
    context), which would land in the middle of a CLI answer. Only stderr is redirected, never stdout (the
    terminal chat draws there from another thread); failures still surface as exceptions.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
