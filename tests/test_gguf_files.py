"""Joining a GGUF file shipped in parts: size, pinned hash and header checked, a stamp trusted afterwards."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from assistant.models.base import ModelError
from assistant.models.gguf_files import PartedGGUF, ensure_joined, read_header, verify_file

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"


def write_gguf(path: Path, *, architecture: str = "qwen2", template: str | None = TEMPLATE) -> bytes:
    """A tiny but real GGUF file (one tensor, a vocabulary, optionally a chat template)."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b", "<|im_end|>"])
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((3, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def install_parts(root: Path, package: str, data: bytes, parts: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lays ``data`` out as packages ``{package}1..N/data/partNN.bin`` on sys.path, as the wheels do."""
    size = -(-len(data) // parts)
    for i in range(1, parts + 1):
        folder = root / f"{package.replace('-', '_')}{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "__init__.py").write_text("")
        (folder / "data" / f"part{i:02d}.bin").write_bytes(data[(i - 1) * size : i * size])
    monkeypatch.syspath_prepend(str(root))


@pytest.fixture
def parted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PartedGGUF, bytes]:
    data = write_gguf(tmp_path / "whole.gguf")
    package = f"tessera-test-{tmp_path.name.replace('_', '-')}-part"
    install_parts(tmp_path / "site", package, data, 3, monkeypatch)
    model = PartedGGUF(
        name="tiny", title="Tiny test model", file_name="tiny.gguf", package=package, version="1.0",
        parts=3, size=len(data), sha256=hashlib.sha256(data).hexdigest(), architecture="qwen2",
    )
    return model, data


def test_joins_checks_and_stamps(parted: tuple[PartedGGUF, bytes], tmp_path: Path) -> None:
    model, data = parted
    path = ensure_joined(model, tmp_path / "models")
    assert path.read_bytes() == data
    assert path.with_suffix(".verified.json").exists()
    assert read_header(path)["tokenizer.chat_template"] == TEMPLATE
    assert not list((tmp_path / "models").glob("*.partial"))


def test_a_stamped_file_is_not_joined_again(parted: tuple[PartedGGUF, bytes], tmp_path: Path) -> None:
    model, _ = parted
    path = ensure_joined(model, tmp_path / "models")
    model.part_path(2).unlink()  # a later call would fail if it read the parts again
    assert ensure_joined(model, tmp_path / "models") == path


def test_a_changed_file_is_joined_again(parted: tuple[PartedGGUF, bytes], tmp_path: Path) -> None:
    model, data = parted
    path = ensure_joined(model, tmp_path / "models")
    path.write_bytes(b"x" * len(data))
    os.utime(path, ns=(1, 1))
    assert ensure_joined(model, tmp_path / "models").read_bytes() == data


def test_wrong_hash_is_refused_with_what_to_reinstall(parted: tuple[PartedGGUF, bytes], tmp_path: Path) -> None:
    model, _ = parted
    wrong = dataclasses.replace(model, sha256="0" * 64)
    with pytest.raises(ModelError, match=r"sha256.*pip install --force-reinstall"):
        ensure_joined(wrong, tmp_path / "models")
    assert not (tmp_path / "models" / "tiny.gguf").exists()
    assert not list((tmp_path / "models").glob("*.partial"))


def test_wrong_size_is_refused(parted: tuple[PartedGGUF, bytes], tmp_path: Path) -> None:
    model, data = parted
    with pytest.raises(ModelError, match=f"expected {len(data) + 1:,}"):
        ensure_joined(dataclasses.replace(model, size=len(data) + 1), tmp_path / "models")


def test_missing_part_names_the_package(parted: tuple[PartedGGUF, bytes], tmp_path: Path) -> None:
    model, _ = parted
    missing = dataclasses.replace(model, parts=4, package=model.package)
    with pytest.raises(ModelError, match=rf"{model.package}4 is not installed.*pip install"):
        ensure_joined(missing, tmp_path / "models")


@pytest.mark.parametrize(
    ("architecture", "template", "message"),
    [("llama", TEMPLATE, "architecture 'llama'"), ("qwen2", None, "no chat template")],
)
def test_header_is_checked(tmp_path: Path, architecture: str, template: str | None, message: str) -> None:
    data = write_gguf(tmp_path / "m.gguf", architecture=architecture, template=template)
    model = PartedGGUF("m", "M", "m.gguf", "none-part", "1", 1, len(data), hashlib.sha256(data).hexdigest(), "qwen2")
    with pytest.raises(ModelError, match=message):
        verify_file(model, tmp_path / "m.gguf")
