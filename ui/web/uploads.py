"""Saving uploaded files into ``<home>/uploads`` safely, and reading the web app's login list."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from pathlib import Path

_UNSAFE = re.compile(r"[^\w.\- ]+")
_MAX_NAME = 120
_MAX_BYTES = 200  # file systems allow 255 bytes per name; 120 four-byte characters would not fit


def safe_name(name: str) -> str:
    """A file name that is safe to create inside the uploads folder.

    Characters other than letters, digits, ``_ . - `` and space become ``_``; leading dots and spaces go
    (no hidden files); long names are cut to 120 characters and 200 UTF-8 bytes, keeping the extension.

    Raises:
        ValueError: The name holds a path (``/``, ``\\``, ``..``) or nothing usable.
    """
    if "/" in name or "\\" in name or name.strip() in (".", "..") or "\x00" in name:
        raise ValueError(f"refused upload name {name!r}: expected a plain file name, not a path")
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", name)).strip().lstrip(". ")
    if not cleaned.strip("_"):
        raise ValueError(f"refused upload name {name!r}: it has no usable characters")
    if len(cleaned) > _MAX_NAME or len(cleaned.encode()) > _MAX_BYTES:
        stem, dot, ext = cleaned.rpartition(".")
        ext, stem = (ext[:16], stem) if dot and stem else ("", cleaned)
        suffix = f".{ext}" if ext else ""
        stem = stem[: _MAX_NAME - len(suffix)]
        while len((stem + suffix).encode()) > _MAX_BYTES:
            stem = stem[:-1]
        cleaned = stem.rstrip(". ") + suffix
    return cleaned


def save_upload(source: Path, name: str, folder: Path, *, max_mb: float) -> Path:
    """Copies an uploaded file to ``folder/<safe name>`` (replacing an earlier upload of that name).

    The copy is written to a temporary file in ``folder`` and renamed over the name, so a half-written upload
    is never seen and a symlink already at that name is replaced, never followed.

    Args:
        source: The uploaded file (Gradio's temporary copy).
        name: The name the browser gave it.
        folder: The uploads folder; nothing is ever written outside it.
        max_mb: Largest accepted size in megabytes.

    Raises:
        ValueError: An unsafe name, a file over ``max_mb``, or a source that is not a file.
    """
    source = Path(source)
    if not source.is_file():
        raise ValueError(f"upload {name!r} is not a readable file")
    size = source.stat().st_size
    if size > max_mb * 1024 * 1024:
        raise ValueError(f"{name!r} is {size / 1024 / 1024:.1f} MB; uploads are limited to {max_mb:g} MB")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder.resolve() / safe_name(name)
    if target.resolve().parent != folder.resolve():  # safe_name refuses paths; this catches a symlink out
        raise ValueError(f"refused upload name {name!r}: it would land outside {folder}")
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as data:
            shutil.copyfileobj(data, out)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return target


def save_uploads(files: Sequence[str | Path], folder: Path, *, max_mb: float) -> tuple[list[Path], list[tuple[str, str]]]:
    """Saves each uploaded file; returns the saved paths and ``(name, reason)`` for each refused one."""
    saved: list[Path] = []
    refused: list[tuple[str, str]] = []
    for file in files:
        name = Path(file).name
        try:
            saved.append(save_upload(Path(file), name, folder, max_mb=max_mb))
        except (ValueError, OSError) as exc:
            refused.append((name, str(exc)))
    return saved, refused


def load_auth(value: str) -> list[tuple[str, str]]:
    """Logins for the web app from ``"user:pass"`` or a file with one ``user:pass`` per line.

    Blank lines and lines starting with ``#`` in the file are skipped.

    Raises:
        ValueError: Neither an existing file nor ``user:pass``, or a line without a user or password.
    """
    path = Path(value).expanduser()
    if path.is_file():
        lines = [(f"{path}:{i}", line.strip()) for i, line in enumerate(path.read_text().splitlines(), 1)]
        pairs = [_pair(line, where) for where, line in lines if line and not line.startswith("#")]
        if not pairs:
            raise ValueError(f"auth file {path} has no user:pass lines")
        return pairs
    if ":" not in value:
        raise ValueError(f"--auth expects user:pass or a file of user:pass lines; {value!r} is neither")
    return [_pair(value, "--auth")]


def _pair(line: str, where: str) -> tuple[str, str]:
    user, sep, password = line.partition(":")
    if not sep or not user.strip() or not password:
        raise ValueError(f"{where}: expected user:pass with a non-empty user and password")
    return user.strip(), password
