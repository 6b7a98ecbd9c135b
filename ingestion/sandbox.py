"""A worker process that runs a parser under a wall-clock limit and a memory limit.

PDF, DOCX and HTML parsers are big libraries fed untrusted files: a crafted or broken file can make one
loop for ever or allocate without bound. `Sandbox.run` calls a function in a worker process whose address
space is capped (``RLIMIT_AS``) and waits for it at most a given time. The worker is persistent (started
on first use, reused for every file); one that overruns, crashes or runs out of memory is killed, and
the next call starts a fresh one.

The worker is a fresh interpreter (``python -c``), never a fork: the parent has torch loaded and threads
running, where fork is unsafe. It is not started through multiprocessing's 'spawn' or 'forkserver'
either: those re-run the parent's ``__main__`` script in the worker, so a script that ingests at top
level (without ``if __name__ == "__main__":``) would run again there, or crash the worker.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

R = TypeVar("R")
_MB = 2**20
_GRACE_S = 10  # the worker's own deadline (SIGALRM) trails the parent's, to end it should the parent die


class WorkerTimeout(TimeoutError):
    """The call did not finish within its time limit (the worker was killed)."""


class WorkerCrash(RuntimeError):
    """The worker died during the call (a crash in C code, a signal, the system's OOM killer)."""


class Sandbox:
    """Runs functions in one persistent worker process, one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the worker answers one request at a time
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._owner = 0  # the pid that started the worker: a forked child must start its own

    def run(self, fn: Callable[..., R], *args: Any, timeout_s: float, memory_mb: int) -> R:
        """Returns ``fn(*args)``, computed in the worker.

        Args:
            fn: A module-level function (it is sent by name, so the worker must be able to import it).
            args: Its arguments; they and the result travel pickled.
            timeout_s: Wall-clock seconds the call may take, counted from sending it (a worker's first
                call also imports the function's module).
            memory_mb: The worker's address-space limit during the call.

        Raises:
            WorkerTimeout: The call took longer than ``timeout_s``.
            MemoryError: ``fn`` ran out of memory under ``memory_mb``.
            WorkerCrash: The worker died during the call.
            Exception: Whatever ``fn`` raised (re-raised here when it pickles; else a RuntimeError naming it).
        """
        if timeout_s <= 0 or memory_mb <= 0:
            raise ValueError(f"Sandbox.run: timeout_s and memory_mb must be > 0, got {timeout_s}, {memory_mb}")
        with self._lock:
            conn = self._connection()
            try:
                conn.send((fn, args, memory_mb * _MB, int(timeout_s) + _GRACE_S))
                reply = conn.recv_bytes() if conn.poll(timeout_s) else None
            except (EOFError, OSError):  # the worker died: EOF on the socket, or a broken pipe
                raise WorkerCrash(self._stop(wait_s=1.0)) from None
            except BaseException:  # Ctrl-C, an argument that won't pickle: the worker's state is
                self._stop()  # unknown, so it goes, and the next call starts a fresh one
                raise
            if reply is None:
                self._stop()
                raise WorkerTimeout(f"no result after {timeout_s:g} s")
            try:
                ok, value = pickle.loads(reply)
            except Exception as exc:  # e.g. an exception class whose __init__ needs other arguments
                ok, value = False, RuntimeError(f"the worker's reply could not be read: {exc!r}")
            if isinstance(value, MemoryError):
                self._stop(wait_s=1.0)  # it exits: a C library that failed an allocation may be inconsistent
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def close(self) -> None:
        """Stops the worker, if one is running (the next `run` starts another)."""
        with self._lock:
            self._stop()

    def _connection(self) -> Connection:
        """The socket to the worker, starting the worker if there is none."""
        if self._conn is None or self._owner != os.getpid():
            ours, theirs = socket.socketpair()
            path = os.pathsep.join(p for p in sys.path if p and os.path.exists(p))  # what we import, it can
            self._process = subprocess.Popen(
                [sys.executable, "-c", f"from ingestion.sandbox import _serve; _serve({theirs.fileno()})"],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stderr stays: a crash's traceback is worth seeing
                env={**os.environ, "PYTHONPATH": path},
                start_new_session=True,  # Ctrl-C is for the parent, which then ends the worker
            )
            theirs.close()
            self._conn, self._owner = Connection(ours.detach()), os.getpid()
        return self._conn

    def _stop(self, wait_s: float = 0.0) -> str:
        """Ends the worker, killing it unless it exits within ``wait_s``; returns how it ended."""
        process, conn, self._process, self._conn = self._process, self._conn, None, None
        if conn is not None:
            conn.close()
        if process is None:
            return "no worker"
        try:
            code = process.wait(wait_s)  # a worker that died on its own is reaped with its exit code
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return "killed"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def _serve(fd: int) -> None:
    """The worker's loop: receive ``(fn, args, memory limit, deadline)``, reply ``(ok, result or error)``."""
    logging.getLogger().addHandler(logging.NullHandler())  # parser warnings: failures come back as errors
    conn = Connection(fd)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return
        reply: tuple[bool, Any]
        try:
            fn, args, limit, deadline_s = pickle.loads(message)
            signal.alarm(deadline_s)  # SIGALRM ends this process, should the parent not be there to
            _limit_address_space(limit)
            reply = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
            reply = (False, exc)
        finally:
            _limit_address_space(None)  # replying (pickling the result) must not fail for want of memory
        try:
            conn.send(reply)
        except Exception as exc:  # the result or the error does not pickle
            conn.send((False, RuntimeError(f"{type(reply[1]).__name__} could not be sent back: {exc}")))
        signal.alarm(0)
        if isinstance(reply[1], MemoryError):
            return  # the parent replaces us


def _limit_address_space(limit: int | None) -> None:
    """Sets the soft ``RLIMIT_AS`` to ``limit`` bytes (None: as high as the hard limit allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = hard if limit is None else limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    if want != soft:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
        except (ValueError, OSError):  # a system that does not enforce RLIMIT_AS (macOS): the time limit holds
            pass
