"""Saving uploads safely and reading logins (`ui.web.uploads`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui.web import load_auth
from ui.web.uploads import safe_name, save_upload, save_uploads


@pytest.mark.parametrize(
    "name,expected",
    [
        ("notes.md", "notes.md"),
        ("My Report (v2).pdf", "My Report _v2_.pdf"),
        (".bashrc", "bashrc"),
        ("ünïcode.txt", "ünïcode.txt"),
        ("a;rm -rf $HOME.md", "a_rm -rf _HOME.md"),
    ],
)
def test_safe_name_sanitises(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["../etc/passwd", "..", ".", "a/b.md", "..\\x.md", "/abs.md", "x\x00.md", "???", ""])
def test_safe_name_refuses_paths_and_empty_names(name: str) -> None:
    with pytest.raises(ValueError, match="refused upload name"):
        safe_name(name)


def test_safe_name_cuts_long_names_keeping_the_extension() -> None:
    name = safe_name("x" * 300 + ".docx")
    assert len(name) <= 120 and name.endswith(".docx")


def test_save_upload_copies_into_the_folder(tmp_path: Path) -> None:
    src = tmp_path / "tmp123"
    src.write_text("# Hello")
    folder = tmp_path / "home" / "uploads"
    saved = save_upload(src, "hello world.md", folder, max_mb=1)
    assert saved == (folder / "hello world.md").resolve() and saved.read_text() == "# Hello"
    src.write_text("# Changed")
    assert save_upload(src, "hello world.md", folder, max_mb=1).read_text() == "# Changed"  # replaces


def test_save_upload_refuses_traversal_large_and_missing_files(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x" * 2048)
    folder = tmp_path / "uploads"
    with pytest.raises(ValueError, match="not a path"):
        save_upload(src, "../../evil.md", folder, max_mb=1)
    assert not (tmp_path / "evil.md").exists() and not list(tmp_path.parent.glob("evil.md"))
    with pytest.raises(ValueError, match="limited to 0.001 MB"):
        save_upload(src, "big.md", folder, max_mb=0.001)
    with pytest.raises(ValueError, match="not a readable file"):
        save_upload(tmp_path / "missing", "m.md", folder, max_mb=1)


def test_save_uploads_reports_refusals(tmp_path: Path) -> None:
    small, big = tmp_path / "small.md", tmp_path / "big.md"
    small.write_text("hi")
    big.write_bytes(b"x" * 4096)
    saved, refused = save_uploads([str(small), big], tmp_path / "uploads", max_mb=0.002)
    assert [p.name for p in saved] == ["small.md"]
    assert refused[0][0] == "big.md" and "limited to" in refused[0][1]


def test_load_auth_pair_and_file(tmp_path: Path) -> None:
    assert load_auth("ana:pw") == [("ana", "pw")]
    assert load_auth("ana:p:w") == [("ana", "p:w")]
    file = tmp_path / "users.txt"
    file.write_text("# team\nana:pw\n\nbo:secret\n")
    assert load_auth(str(file)) == [("ana", "pw"), ("bo", "secret")]


@pytest.mark.parametrize("value", ["ana", ":pw", "ana:", "/no/such/file"])
def test_load_auth_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError, match="user:pass"):
        load_auth(value)


def test_load_auth_rejects_bad_file_lines(tmp_path: Path) -> None:
    file = tmp_path / "users.txt"
    file.write_text("ana:pw\nbroken\n")
    with pytest.raises(ValueError, match=r"users.txt:2"):
        load_auth(str(file))
    file.write_text("# nobody\n")
    with pytest.raises(ValueError, match="no user:pass lines"):
        load_auth(str(file))


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "/tmp/../etc/x.md", "C:\\Windows\\x.md", "..", "../", "a/../../b.md", "\x00", "notes.md\x00.sh", "...."],
)
def test_save_upload_never_writes_outside_the_folder(tmp_path: Path, name: str) -> None:
    src = tmp_path / "src"
    src.write_text("x")
    folder = tmp_path / "home" / "uploads"
    with pytest.raises(ValueError, match="refused upload name"):
        save_upload(src, name, folder, max_mb=1)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["home", "home/uploads", "src"]


def test_save_upload_replaces_a_symlink_in_the_folder_rather_than_follow_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_text("uploaded")
    outside = tmp_path / "outside.md"
    outside.write_text("precious")
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "link.md").symlink_to(outside)  # planted: points out of the folder
    with pytest.raises(ValueError, match="outside"):
        save_upload(src, "link.md", folder, max_mb=1)
    (folder / "dangling.md").symlink_to(tmp_path / "created-by-upload.md")
    with pytest.raises(ValueError, match="outside"):
        save_upload(src, "dangling.md", folder, max_mb=1)
    assert outside.read_text() == "precious" and not (tmp_path / "created-by-upload.md").exists()
    (folder / "inner.md").symlink_to(folder / "other.md")  # points inside: replaced by the upload itself
    (folder / "other.md").write_text("other")
    saved = save_upload(src, "inner.md", folder, max_mb=1)
    assert not saved.is_symlink() and saved.read_text() == "uploaded" and (folder / "other.md").read_text() == "other"
    assert not list(folder.glob(".upload-*"))  # no partial copies left behind


def test_very_long_names_fit_the_file_system(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_text("x")
    for name in ("𝒳" * 300 + ".md", "é" * 400 + ".pdf", "x" * 5000, "a." + "b" * 300):
        saved = save_upload(src, name, tmp_path / "uploads", max_mb=1)
        assert saved.parent == (tmp_path / "uploads").resolve() and len(saved.name.encode()) <= 200
        assert saved.suffix == Path(name).suffix[:17] or len(Path(name).suffix) > 17
