"""Hostile input for ingestion.loaders and ingestion.sandbox: fuzzed bytes, named broken files, parsers
that hang, hoard memory or crash, and an ingest run over all of them that loses nothing else.

Each bad file must end in a `LoaderError` with a clear message, never another exception, a hang or an
exhausted machine.
"""

from __future__ import annotations

import io
import os
import random
import threading
import time
import zipfile
from pathlib import Path

import hostile_loaders
import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from assistant.config import IngestionSettings, Settings
from assistant.models.fake import FakeEmbedder
from ingestion import loaders
from ingestion.docstore import DocStore
from ingestion.loaders import LoaderError, check_file, iter_files, load_document, normalise_text, register_loader
from ingestion.pipeline import Ingestor
from ingestion.propositions import DeterministicExtractor
from ingestion.sandbox import Sandbox, WorkerCrash, WorkerTimeout
from retrievers.store import open_store

MB = 2**20
DEFAULTS = IngestionSettings()
MAX_BYTES = int(DEFAULTS.max_file_mb * MB)  # what pipeline.py passes with default settings


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Loaders a test registers vanish afterwards, so other test files see only the built-ins."""
    monkeypatch.setattr(loaders, "_LOADERS", dict(loaders._LOADERS))


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def error_of(path: Path, **limits) -> str:
    """The message `load_document` raises for `path` (it must raise a LoaderError)."""
    with pytest.raises(LoaderError) as info:
        load_document(path, **{"max_bytes": MAX_BYTES, **limits})
    return str(info.value)


def real(path: Path) -> str:
    return os.path.realpath(path)


def pdf_bytes(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def docx_bytes(text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Title", level=1)
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb(path: Path, unpacked_mb: int) -> Path:
    """A DOCX-named zip with one member of `unpacked_mb` MB of zeros (about 1 KB per MB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            for _ in range(unpacked_mb):
                member.write(bytes(MB))
    return path


# --- fuzzing -----------------------------------------------------------------------------------------

PDF_SEED = pdf_bytes("Fuzzing seed text for a small PDF. " * 4)
DOCX_SEED = docx_bytes("Fuzzing seed text for a small DOCX.")
HTML_SEED = (
    b"<!doctype html><html><head><title>T</title><script>var x = '<p>';</script></head><body>"
    b"<h1>Head</h1><p>Some <b>bold</b> text.</p><pre>  code\n</pre><table><tr><td>a</td></tr></table>"
    b"</body></html>"
)


def mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """`seed` cut short and with a few bytes overwritten: near-valid files reach deep into a parser."""
    edits = st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255)), max_size=8)

    def mutate(cut: int, changes: list[tuple[int, int]]) -> bytes:
        data = bytearray(seed[:cut])
        for index, value in changes:
            if index < len(data):
                data[index] = value
        return bytes(data)

    return st.builds(mutate, st.integers(0, len(seed)), edits)


FUZZ = {
    ".txt": st.binary(max_size=2000),
    ".md": st.binary(max_size=2000),
    ".html": st.one_of(st.binary(max_size=2000), mutations(HTML_SEED)),
    ".pdf": st.one_of(
        st.binary(max_size=2000), st.binary(max_size=500).map(b"%PDF-1.4\n".__add__), mutations(PDF_SEED)
    ),
    ".docx": st.one_of(st.binary(max_size=2000), mutations(DOCX_SEED)),
}


@pytest.mark.parametrize("ext", sorted(FUZZ))
def test_arbitrary_bytes_load_or_raise_loader_error(tmp_path, ext):
    path = tmp_path / f"fuzz{ext}"

    @given(data=FUZZ[ext])
    @hypothesis_settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        began = time.monotonic()
        try:
            document = load_document(path, max_bytes=MB, parse_timeout_s=20)
        except LoaderError as exc:  # any other exception fails the test
            assert str(exc).startswith(f"{real(path)}: ") and exc.reason
        else:
            assert document.text.strip() and document.source == real(path)
        assert time.monotonic() - began < 25

    check()


PRINTABLE = st.characters(
    exclude_categories=("Cs", "Cc"), exclude_characters="\ufeff\ufffd", include_characters="\n\t\r"
)  # control characters, BOMs and U+FFFD are what `_decode` treats as binary or strips


@given(text=st.text(PRINTABLE, min_size=1, max_size=400))
@hypothesis_settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_any_text_round_trips_through_txt(tmp_path_factory, text):
    assume(normalise_text(text).strip())
    path = write(tmp_path_factory.mktemp("rt") / "any.txt", text)
    assert load_document(path, max_bytes=MB).text == normalise_text(text)


# --- named broken files ------------------------------------------------------------------------------


def test_truncated_pdf_says_it_is_truncated(tmp_path):
    good = pdf_bytes("Some text here. " * 40)
    path = write(tmp_path / "cut.pdf", good[: len(good) // 2])
    assert error_of(path) == (
        f"{real(path)}: could not be parsed as PDF: it is truncated (no %%EOF at its end): "
        "Stream has ended unexpectedly (download or export it again)"
    )


def test_zip_bomb_docx_is_refused_before_unpacking(tmp_path):
    path = zip_bomb(tmp_path / "bomb.docx", unpacked_mb=256)
    assert path.stat().st_size < MB  # small on disk, 256 MB unpacked
    began = time.monotonic()
    assert error_of(path) == (
        f"{real(path)}: would unpack to 256.0 MB, over the 200.0 MB limit (a zip bomb?)"
        " (raise ingestion.max_unpacked_mb if the file is genuine)"
    )
    # Under a raised limit, the member's compression ratio still gives it away.
    member = zipfile.ZipFile(path).getinfo("word/document.xml")
    ratio = member.file_size / member.compress_size
    assert error_of(path, max_unpacked_mb=300) == (
        f"{real(path)}: member 'word/document.xml' is compressed {ratio:.0f}:1 (a zip bomb?)"
        " (re-save the file in its application if it is genuine)"
    )
    assert time.monotonic() - began < 10  # refused from the zip's directory, never inflated


def test_unpacked_size_limit_counts_every_member(tmp_path):
    path = tmp_path / "many.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # stored: ratio 1, only the size tells
        for n in range(3):
            archive.writestr(f"word/part{n}.xml", random.Random(n).randbytes(MB))
    assert error_of(path, max_unpacked_mb=2) == (
        f"{real(path)}: would unpack to 3.0 MB, over the 2.0 MB limit (a zip bomb?)"
        " (raise ingestion.max_unpacked_mb if the file is genuine)"
    )


def test_corrupt_zip_docx(tmp_path):
    good = docx_bytes("Some text.")
    path = write(tmp_path / "cut.docx", good[: len(good) // 2])
    assert error_of(path) == (
        f"{real(path)}: could not be parsed as DOCX: broken zip archive: File is not a zip file"
        " (re-save or re-export the file)"
    )


def test_genuine_docx_passes_the_zip_checks(tmp_path):
    path = write(tmp_path / "fine.docx", docx_bytes("A perfectly normal paragraph."))
    assert load_document(path, max_bytes=MAX_BYTES).text == "Title\n\nA perfectly normal paragraph."


def test_text_file_over_the_default_size_limit_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big.txt"
    with path.open("wb") as handle:
        handle.truncate(51 * MB)  # sparse: 51 MB without writing them

    def refuse(self: Path) -> bytes:
        raise AssertionError(f"{self} was read")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert error_of(path) == f"{real(path)}: is 51.0 MB, over the 50.0 MB limit (raise ingestion.max_file_mb)"
    with pytest.raises(LoaderError, match="over the 50.0 MB limit"):
        check_file(path, max_bytes=MAX_BYTES)


def test_text_file_of_51_mb_loads_under_a_raised_limit(tmp_path):
    line = "The quick brown fox jumps over the lazy dog, again and again.\n"
    path = write(tmp_path / "big.txt", line * (51 * MB // len(line) + 1))
    document = load_document(path, max_bytes=60 * MB)
    assert len(document.text) == path.stat().st_size - 1  # all of it, less the final newline


def test_invalid_utf8(tmp_path):
    # Latin-1 prose is not UTF-8: it is read in the legacy encoding, every accent intact.
    latin = write(tmp_path / "latin.txt", "Crème brûlée à la française, s'il vous plaît.".encode("latin-1"))
    assert load_document(latin, max_bytes=MB).text == "Crème brûlée à la française, s'il vous plaît."
    # One broken sequence in UTF-8 text costs one odd character, not the file.
    stray = write(tmp_path / "stray.txt", b"Hello w\xc3rld, the rest of this line is fine.")
    assert load_document(stray, max_bytes=MB).text == "Hello w\u00c3rld, the rest of this line is fine."
    # Bytes that are no encoding's text are refused as binary.
    junk = write(tmp_path / "junk.md", bytes([0x80, 0x81, 0xFE, 0xFF]) * 50 + b"abc")
    assert error_of(junk) == f"{real(junk)}: looks binary, not text (check the file type)"


def test_html_scripts_and_styles_never_reach_the_text(tmp_path):
    html = """<html><head><title>Page</title><script>var leak = "SCRIPT-IN-HEAD";</script>
    <style>body { color: red } /* STYLE-TEXT */</style></head>
    <body><p>Visible one.</p><script type="module">document.write("SCRIPT-IN-BODY")</script>
    <noscript>NOSCRIPT-TEXT</noscript><p onclick="alert('ATTRIBUTE-TEXT')">Visible two.</p>
    <template><p>TEMPLATE-TEXT</p></template>
    <script>if (a < b && c > d) { document.write("<p>FAKE-PARAGRAPH</p>") }</script></body></html>"""
    document = load_document(write(tmp_path / "page.html", html), max_bytes=MB)
    assert document.text == "Visible one.\n\nVisible two."
    assert document.title == "Page"


def test_html_with_nothing_but_scripts_has_no_text(tmp_path):
    path = write(tmp_path / "app.html", "<html><body><script>renderEverything()</script></body></html>")
    assert error_of(path) == f"{real(path)}: no text found (check that the file has content)"


@pytest.mark.parametrize("ext", [".txt", ".md", ".html", ".pdf", ".docx"])
def test_empty_file(tmp_path, ext):
    path = write(tmp_path / f"empty{ext}", b"")
    assert error_of(path) == f"{real(path)}: file is empty"


@pytest.mark.parametrize(
    ("ext", "reason"),
    [
        (".txt", "looks binary, not text (check the file type)"),
        (".md", "looks binary, not text (check the file type)"),
        (".html", "looks binary, not text (check the file type)"),
        (".pdf", "could not be parsed as PDF: no %PDF- header"),
        (".docx", "could not be parsed as DOCX: broken zip archive: File is not a zip file"
                  " (re-save or re-export the file)"),
    ],
)
def test_binary_file(tmp_path, ext, reason):
    path = write(tmp_path / f"blob{ext}", random.Random(7).randbytes(4096))
    assert error_of(path) == f"{real(path)}: {reason}"


def test_folder_link_loop_ends(tmp_path):
    root = tmp_path / "root"
    write(root / "a" / "doc.md", "# Doc\ntext")
    os.symlink(root, root / "a" / "up")  # root/a/up/a/up/... for ever, if followed blindly
    os.symlink(root / "a", root / "side")
    assert list(iter_files([root])) == [root / "a" / "doc.md"]


def test_file_link_loops(tmp_path):
    os.symlink("self.md", tmp_path / "self.md")  # points at itself
    os.symlink("pong.txt", tmp_path / "ping.txt")
    os.symlink("ping.txt", tmp_path / "pong.txt")
    found = list(iter_files([tmp_path]))
    assert [p.name for p in found] == ["ping.txt", "pong.txt", "self.md"]
    for path in found:
        assert error_of(path) == f"{real(path)}: is a symbolic link loop (fix or remove the link)"
        with pytest.raises(LoaderError, match="symbolic link loop"):
            check_file(path, max_bytes=MB)


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path / "secret.txt", "hidden")

    def refuse(self: Path) -> bytes:  # chmod 000 does not stop root, so the read itself refuses
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert error_of(path) == f"{real(path)}: permission denied (make the file readable, e.g. chmod u+r)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_by_mode(tmp_path):
    path = write(tmp_path / "secret.md", "hidden")
    path.chmod(0)
    try:
        assert error_of(path) == f"{real(path)}: permission denied (make the file readable, e.g. chmod u+r)"
    finally:
        path.chmod(0o600)


def test_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    assert error_of(fifo) == f"{real(fifo)}: is not a regular file"
    with pytest.raises(LoaderError, match="is not a regular file"):
        check_file(fifo, max_bytes=MB)


def test_folder_named_like_a_file(tmp_path):
    folder = write(tmp_path / "x.txt" / "inner.md", "# Inner\ntext").parent
    assert error_of(folder) == f"{real(folder)}: is a folder, not a file (pass folders through iter_files)"
    assert list(iter_files([tmp_path])) == [folder / "inner.md"]


# --- parsers that hang, hoard or crash ---------------------------------------------------------------


def test_hung_parser_is_killed_at_the_time_limit_and_the_next_file_loads(tmp_path):
    register_loader(".hang", hostile_loaders.sleep_forever, sandboxed=True)
    path = write(tmp_path / "stuck.hang", "anything")
    began = time.monotonic()
    assert error_of(path, parse_timeout_s=2) == (
        f"{real(path)}: took longer than 2 s to parse (raise ingestion.parse_timeout_s or split the file)"
    )
    assert time.monotonic() - began < 2 + 10  # the limit plus a fresh worker's start on a busy machine
    pdf = write(tmp_path / "after.pdf", pdf_bytes("Loaded after the hang."))
    assert load_document(pdf, max_bytes=MB).text == "Loaded after the hang."


def test_greedy_parser_hits_the_memory_limit_and_the_next_file_loads(tmp_path):
    register_loader(".hog", hostile_loaders.allocate_forever, sandboxed=True)
    path = write(tmp_path / "greedy.hog", "anything")
    assert error_of(path, parse_memory_mb=300) == (
        f"{real(path)}: the parser ran out of memory (limit 300 MB) (raise ingestion.parse_memory_mb or split the file)"
    )
    html = write(tmp_path / "after.html", "<p>Loaded after the hog.</p>")
    assert load_document(html, max_bytes=MB).text == "Loaded after the hog."


def test_crashing_parser_is_reported_and_the_next_file_loads(tmp_path):
    register_loader(".crash", hostile_loaders.segfault, sandboxed=True)
    path = write(tmp_path / "boom.crash", "anything")
    assert error_of(path) == (
        f"{real(path)}: the parser crashed or ran out of memory (killed by signal 11)"
        " (raise ingestion.parse_memory_mb, or re-save the file in its application)"
    )
    register_loader(".echo", hostile_loaders.echo, sandboxed=True)
    assert load_document(write(tmp_path / "ok.echo", "still here"), max_bytes=MB).text == "still here"


def test_in_process_loader_out_of_memory_is_a_loader_error(tmp_path):
    def greedy(data: bytes, path: Path) -> loaders.Extracted:
        raise MemoryError

    register_loader(".greedy", greedy)  # not sandboxed: it runs here, and must not end an ingest run
    path = write(tmp_path / "a.greedy", "anything")
    assert error_of(path) == f"{real(path)}: ran out of memory while loading (lower ingestion.max_file_mb)"


def test_sandboxed_loader_must_be_importable_by_name():
    with pytest.raises(ValueError, match="module-level function"):
        register_loader(".lambda", lambda data, path: None, sandboxed=True)


def test_one_worker_serves_many_files(tmp_path):
    first = write(tmp_path / "one.pdf", pdf_bytes("First."))
    second = write(tmp_path / "two.html", "<p>Second.</p>")
    load_document(first, max_bytes=MB)
    worker = loaders._SANDBOX._process
    load_document(second, max_bytes=MB)
    assert worker is not None and loaders._SANDBOX._process is worker


def test_sandbox_runs_returns_and_raises():
    sandbox = Sandbox()
    try:
        assert sandbox.run(normalise_text, "a  \r\nb", timeout_s=30, memory_mb=512) == "a\nb"
        with pytest.raises(LoaderError, match="x: bad"):
            sandbox.run(hostile_loaders.raise_loader_error, "x", timeout_s=30, memory_mb=512)
        with pytest.raises(WorkerTimeout):
            sandbox.run(time.sleep, 5, timeout_s=0.5, memory_mb=512)
        with pytest.raises(WorkerCrash, match="exit code 3"):
            sandbox.run(os._exit, 3, timeout_s=30, memory_mb=512)
        assert sandbox.run(len, b"abc", timeout_s=30, memory_mb=512) == 3
    finally:
        sandbox.close()


@pytest.mark.parametrize(("timeout_s", "memory_mb"), [(0, 512), (5, 0), (-1, 512)])
def test_sandbox_refuses_nonsense_limits(timeout_s, memory_mb):
    with pytest.raises(ValueError, match="must be > 0"):
        Sandbox().run(len, b"", timeout_s=timeout_s, memory_mb=memory_mb)


def test_new_settings_have_documented_defaults():
    assert (DEFAULTS.max_unpacked_mb, DEFAULTS.parse_timeout_s, DEFAULTS.parse_memory_mb) == (200, 60, 2048)
    kw = load_document.__kwdefaults__
    assert (kw["max_unpacked_mb"], kw["parse_timeout_s"], kw["parse_memory_mb"]) == (200, 60, 2048)
    with pytest.raises(ValueError):
        IngestionSettings(parse_timeout_s=0)


# --- nothing else is lost ----------------------------------------------------------------------------


@pytest.fixture
def limited(settings: Settings) -> Settings:
    """Settings with short parse limits, so a hung or greedy parser costs the test seconds, not minutes."""
    return Settings(home=settings.home, ingestion={"parse_timeout_s": 2.0, "parse_memory_mb": 300})


@pytest.fixture
def ingestor(limited: Settings):
    with open_store(limited) as store, DocStore(limited.docstore_path) as docstore:
        yield Ingestor(limited, FakeEmbedder(dimension=64), store, docstore, DeterministicExtractor())


def test_ingest_over_every_broken_file_keeps_the_good_ones(ingestor: Ingestor, tmp_path: Path, monkeypatch):
    corpus = tmp_path / "corpus"
    write(corpus / "alpha.md", "# Lakes\nLake Baikal is the deepest lake in the world.\n")
    write(corpus / "zeta.pdf", pdf_bytes("Mount Everest is the highest mountain on Earth."))  # after the hostile ones
    good = pdf_bytes("Some text here. " * 40)
    write(corpus / "cut.pdf", good[: len(good) // 2])
    zip_bomb(corpus / "bomb.docx", unpacked_mb=256)
    with (corpus / "big.txt").open("wb") as handle:
        handle.truncate(51 * MB)
    write(corpus / "blob.txt", random.Random(7).randbytes(4096))
    write(corpus / "empty.md", b"")
    write(corpus / "scripts.html", "<script>alert(1)</script><style>p{}</style>")
    write(corpus / "secret.txt", "hidden")
    write(corpus / "notes.xyz", "unsupported")
    write(corpus / "loop" / "inside.md", b"")
    os.symlink(corpus, corpus / "loop" / "up")
    (corpus / "folder.txt").mkdir()
    for ext, fn in [(".hang", "sleep_forever"), (".hog", "allocate_forever"), (".crash", "segfault")]:
        register_loader(ext, getattr(hostile_loaders, fn), sandboxed=True)
        write(corpus / f"hostile{ext}", "anything")
    read_bytes = Path.read_bytes

    def refuse_secret(self: Path) -> bytes:
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse_secret)

    began = time.monotonic()
    report = ingestor.ingest_paths([corpus], progress=False)
    assert time.monotonic() - began < 60
    assert sorted(Path(p).name for p in report.ingested) == ["alpha.md", "zeta.pdf"]
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert failed == {
        "cut.pdf": "could not be parsed as PDF: it is truncated (no %%EOF at its end): Stream has ended unexpectedly"
        " (download or export it again)",
        "bomb.docx": "would unpack to 256.0 MB, over the 200.0 MB limit (a zip bomb?)"
        " (raise ingestion.max_unpacked_mb if the file is genuine)",
        "big.txt": "is 51.0 MB, over the 50.0 MB limit (raise ingestion.max_file_mb)",
        "blob.txt": "looks binary, not text (check the file type)",
        "empty.md": "file is empty",
        "inside.md": "file is empty",
        "scripts.html": "no text found (check that the file has content)",
        "secret.txt": "permission denied (make the file readable, e.g. chmod u+r)",
        "notes.xyz": failed["notes.xyz"],  # the pipeline's own wording
        "hostile.hang": "took longer than 2 s to parse (raise ingestion.parse_timeout_s or split the file)",
        "hostile.hog": "the parser ran out of memory (limit 300 MB)"
        " (raise ingestion.parse_memory_mb or split the file)",
        "hostile.crash": "the parser crashed or ran out of memory (killed by signal 11)"
        " (raise ingestion.parse_memory_mb, or re-save the file in its application)",
    }
    assert "unsupported" in failed["notes.xyz"]
    assert report.ok and ingestor.store.count() == report.passages + report.propositions > 0
    assert sorted(Path(r.source).name for r in ingestor.docstore.documents()) == ["alpha.md", "zeta.pdf"]


def test_ingest_reports_a_file_link_loop(ingestor: Ingestor, tmp_path: Path):
    corpus = write(tmp_path / "corpus" / "good.md", "Good text.").parent
    os.symlink("self.md", corpus / "self.md")
    report = ingestor.ingest_paths([corpus], progress=False)
    assert [Path(p).name for p in report.ingested] == ["good.md"]
    assert [(Path(p).name, reason) for p, reason in report.failed] == [
        ("self.md", "is a symbolic link loop (fix or remove the link)")
    ]


def test_ingest_reports_a_fifo_without_blocking(ingestor: Ingestor, tmp_path: Path):
    corpus = write(tmp_path / "corpus" / "good.md", "Good text.").parent
    fifo = corpus / "pipe.txt"
    os.mkfifo(fifo)
    released = threading.Event()

    def release() -> None:  # a writer that opens and closes ends a reader's blocked open()
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            released.set()
        except OSError:  # no reader was blocked on it
            pass

    timer = threading.Timer(3.0, release)
    timer.start()
    try:
        report = ingestor.ingest_paths([corpus], progress=False)
    finally:
        timer.cancel()
    assert not released.is_set(), "ingest blocked opening the FIFO"
    assert [Path(p).name for p in report.ingested] == ["good.md"]
    assert [(Path(p).name, reason) for p, reason in report.failed] == [("pipe.txt", "is not a regular file")]
