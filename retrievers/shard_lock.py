"""An exclusive OS lock beside a Qdrant Edge shard, taken before Edge reads any of the shard's files.

Edge's own lock is on the write-ahead log, which it opens only after loading the segments, and loading
removes segments it finds half-written: a second process that merely tried to open the shard could delete
the segments the owner was writing, and the owner's acknowledged points were gone after its next restart
(reproduced: 3,000 points → 0; `tests/test_concurrency.py`). This lock keeps a second process away from
the files altogether. It is an ``flock`` on ``<shard>.lock``, which also holds the owner's pid for messages.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: Edge's own WAL lock is the only guard there
    fcntl = None  # type: ignore[assignment]


# How long to wait for a holder whose pid is not in the lock file yet (20 × 50 ms): it is between its
# flock and its write, or between emptying the file and closing it.
_UNNAMED_RETRIES = 20
_UNNAMED_WAIT_S = 0.05


class ShardBusy(OSError):
    """Another process (or another handle in this one) holds the shard."""


class ShardLock:
    """The lock file ``<shard>.lock`` beside ``shard``; released on `release` or when the process dies.

    Args:
        shard: The shard folder (it need not exist yet).
    """

    def __init__(self, shard: Path) -> None:
        self.path = shard.parent / f"{shard.name}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Takes the lock without waiting; a no-op when already held.

        A holder that has not yet written its pid, or is just letting go (release empties the file), is
        given a moment: the caller then either gets the lock or a busy error that can name the owner.

        Raises:
            ShardBusy: Someone else holds it.
        """
        if fcntl is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(_UNNAMED_RETRIES + 1):
            if self._try_lock():
                return
            if self.owner() or attempt == _UNNAMED_RETRIES:
                raise ShardBusy(f"{self.path} is locked")
            time.sleep(_UNNAMED_WAIT_S)

    def _try_lock(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Lets go of the lock; safe to call when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the lock

    def owner(self) -> str:
        """The pid written by the holder, or "" when none is known."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def __del__(self) -> None:  # a store dropped unclosed by the GC lets go, as Edge's own lock does
        if getattr(self, "_fd", None) is not None:
            self.release()
