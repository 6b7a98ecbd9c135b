"""Loaders: one file in, one `Document` out, chosen by file extension (DESIGN.md, "Data flow").

Loaders live in a registry keyed by extension; the built-ins register through `register_loader` the
same way an extension would. A loader gets the file's bytes and returns an `Extracted` whose text is
already normalised (`normalise_text`), so the offsets it records ("sections", "pages") index straight
into `Document.text`. Every failure for a bad file surfaces as a `LoaderError` that names the file.

Limits keep a hostile file from hanging or exhausting the machine: files over ``max_bytes`` are not
read; zip containers (DOCX) are inspected for zip bombs before a parser unpacks them; and the parsers
of complex formats (PDF, DOCX, HTML) run in a worker process (`ingestion.sandbox`) under a time and a
memory limit. Plain text and Markdown are parsed in-process: their cost is linear in the file size.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import stat
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import IngestionSettings
from assistant.types import Document
from ingestion.metadata import DESCRIPTIVE, describe, front_matter, html_metadata
from ingestion.sandbox import Sandbox, WorkerCrash, WorkerTimeout

log = logging.getLogger(__name__)
_DEFAULTS = IngestionSettings()  # load_document's limits default to the settings' defaults
_MB = 2**20


class LoaderError(ValueError):
    """A file could not be turned into a Document. Message: ``<path>: <reason> (<how to fix>)``."""

    def __init__(self, path: Path | str, reason: str, fix: str | None = None) -> None:
        self.path, self.reason, self.fix = str(path), reason, fix
        super().__init__(f"{path}: {reason}" + (f" ({fix})" if fix else ""))

    def __reduce__(self) -> tuple[Any, ...]:  # keeps it picklable across worker processes
        return (type(self), (self.path, self.reason, self.fix))


@dataclass(frozen=True)
class Extracted:
    """What a loader returns: normalised text, the format's own title (if any) and extras."""

    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


Loader = Callable[[bytes, Path], Extracted]


@dataclass(frozen=True)
class _Registered:
    """A loader and how it must be run (see `register_loader`)."""

    fn: Loader
    sandboxed: bool = False
    archive: bool = False


_LOADERS: dict[str, _Registered] = {}
_SANDBOX = Sandbox()  # one persistent parser worker per process, started on first need


def register_loader(ext: str, fn: Loader | None = None, *, sandboxed: bool = False, archive: bool = False) -> Any:
    """Registers `fn` for files ending in `ext`; without `fn`, returns a decorator.

    Args:
        ext: The extension, with or without the dot, any case (``".md"``, ``"md"``).
        fn: A loader ``(data: bytes, path: Path) -> Extracted``; a later registration replaces an earlier.
        sandboxed: Run `fn` in the parser worker process, under ``parse_timeout_s`` and ``parse_memory_mb``
            (for parsers a hostile file can hang or blow up). `fn` must then be a module-level function:
            the worker imports it by name.
        archive: The format is a zip container (DOCX, EPUB, ODT…): its table of contents is checked
            against ``max_unpacked_mb`` and for zip-bomb compression ratios before `fn` sees the bytes.
    """
    key = "." + ext.lower().lstrip(".")
    if key == ".":
        raise ValueError(f"register_loader: extension {ext!r} is empty (give one such as '.md')")

    def register(loader: Loader) -> Loader:
        if sandboxed and "<" in getattr(loader, "__qualname__", "<"):
            raise ValueError(
                f"register_loader: a sandboxed loader must be a module-level function (the worker imports"
                f" it by name), got {loader!r}"
            )
        _LOADERS[key] = _Registered(loader, sandboxed, archive)
        return loader

    return register(fn) if fn is not None else register


def supported_extensions() -> frozenset[str]:
    """The extensions (lowercase, with the dot) that have a loader."""
    return frozenset(_LOADERS)


def normalise_text(text: str) -> str:
    """NFC, ``\\n`` line ends, no trailing whitespace on lines, no blank lines at either end."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def load_document(
    path: Path,
    *,
    max_bytes: int,
    max_unpacked_mb: float = _DEFAULTS.max_unpacked_mb,
    parse_timeout_s: float = _DEFAULTS.parse_timeout_s,
    parse_memory_mb: int = _DEFAULTS.parse_memory_mb,
) -> Document:
    """Reads one file into a Document.

    The limits default to the defaults of the same-named `IngestionSettings` fields.

    Args:
        path: The file. Its resolved absolute path becomes `Document.source`; its hash `Document.id`.
        max_bytes: Larger files are refused before being read (sizes are reported in MB of 2**20 bytes).
        max_unpacked_mb: Zip containers (DOCX) whose members would unpack to more are refused unopened.
        parse_timeout_s: Seconds a sandboxed parser (PDF, DOCX, HTML) may take before it is killed.
        parse_memory_mb: The sandboxed parser's address-space limit.

    Raises:
        LoaderError: For any file that cannot be loaded, with the reason and, where there is one, a fix.
    """
    path = _real(Path(path))
    data = _read(path, max_bytes)
    loader = _LOADERS[path.suffix.lower()]
    max_unpacked = int(max_unpacked_mb * _MB)
    if loader.sandboxed:
        out = _extract_in_worker(loader, data, path, max_unpacked, parse_timeout_s, parse_memory_mb)
    else:
        try:
            out = _extract(loader, data, path, max_unpacked)
        except MemoryError:
            raise LoaderError(path, "ran out of memory while loading", "lower ingestion.max_file_mb") from None
    if not out.text.strip():
        raise LoaderError(path, "no text found", "check that the file has content")
    sections = out.metadata.get("sections") or []
    title = _one_line(out.title or "") or (sections[0][1] if sections else "") or path.stem
    doc_id = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    # The format's own author/site/dates, normalised; the file's name, and its mtime when the format has none.
    extras = {k: v for k, v in out.metadata.items() if k not in DESCRIPTIVE}
    described = describe({"file_name": path.name, "modified": _mtime(path), **out.metadata})
    return Document(id=doc_id, source=str(path), title=title, text=out.text, metadata={**extras, **described})


def check_file(path: Path, *, max_bytes: int) -> None:
    """Raises the `LoaderError` `load_document` would for a file it would not read, without opening it.

    For callers that read the file themselves first (to hash it): opening a FIFO blocks until a writer
    comes, and a huge file should not be read at all.
    """
    _check(_real(Path(path)), max_bytes)


def iter_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Yields files given directly and, sorted, every non-hidden file under given folders.

    Any extension is yielded so the caller can report unsupported ones; a given path that does not
    exist is yielded too, for `load_document` to report. Symlinked folders are followed once each, so
    a link loop ends; a file reached twice (overlapping inputs, links) is yielded once.
    """
    seen: set[tuple[bool, Path]] = set()  # (is a folder, real path)
    for given in paths:
        stack = [Path(given).expanduser()]
        while stack:
            path = stack.pop()
            key = (path.is_dir(), _real(path))
            if key in seen:
                continue
            seen.add(key)
            if not key[0]:
                yield path
                continue
            try:
                children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            except OSError as exc:
                log.warning("skipping folder %s: %s", path, exc)
                continue
            stack.extend(reversed(children))  # popped in name order


# --- reading and decoding ---------------------------------------------------------------------------


def _read(path: Path, max_bytes: int) -> bytes:
    """Checks the file is loadable, then returns its bytes."""
    _check(path, max_bytes)
    try:
        return path.read_bytes()
    except PermissionError:
        raise LoaderError(path, "permission denied", "make the file readable, e.g. chmod u+r") from None
    except OSError as exc:
        raise LoaderError(path, f"could not be read: {exc.strerror or exc}") from exc


def _check(path: Path, max_bytes: int) -> None:
    """Raises a LoaderError unless `path` is a non-empty regular file of a known type within `max_bytes`."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoaderError(path, "file not found", "check the path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoaderError(path, "is a symbolic link loop", "fix or remove the link") from None
        raise LoaderError(path, f"could not be read: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise LoaderError(path, "is a folder, not a file", "pass folders through iter_files")
    if path.suffix.lower() not in _LOADERS:
        kind = f"unsupported file type '{path.suffix}'" if path.suffix else "has no file extension"
        raise LoaderError(path, kind, "supported: " + ", ".join(sorted(_LOADERS)))
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise LoaderError(path, "is not a regular file")
    if st.st_size == 0:
        raise LoaderError(path, "file is empty")
    if st.st_size > max_bytes:
        size, limit = _mb(st.st_size), _mb(max_bytes)
        raise LoaderError(path, f"is {size}, over the {limit} limit", "raise ingestion.max_file_mb")


# --- parsing, in-process or in the worker -----------------------------------------------------------


def _extract(loader: _Registered, data: bytes, path: Path, max_unpacked: int) -> Extracted:
    """Runs a loader (after the zip-bomb check, for archives); any failure becomes a LoaderError."""
    try:
        if loader.archive:
            _check_zip(data, path, max_unpacked)
        return loader.fn(data, path)
    except (LoaderError, MemoryError):  # MemoryError: the caller reports it (and replaces the worker)
        raise
    except Exception as exc:  # a loader bug or library quirk must still name the file
        raise LoaderError(path, f"could not be loaded: {type(exc).__name__}: {_short(exc)}") from exc


def _extract_in_worker(
    loader: _Registered, data: bytes, path: Path, max_unpacked: int, timeout_s: float, memory_mb: int
) -> Extracted:
    """`_extract` in the sandbox worker, its limits' breaches turned into LoaderErrors."""
    try:
        return _SANDBOX.run(_extract, loader, data, path, max_unpacked, timeout_s=timeout_s, memory_mb=memory_mb)
    except WorkerTimeout:
        fix = "raise ingestion.parse_timeout_s or split the file"
        raise LoaderError(path, f"took longer than {timeout_s:g} s to parse", fix) from None
    except MemoryError:
        fix = "raise ingestion.parse_memory_mb or split the file"
        raise LoaderError(path, f"the parser ran out of memory (limit {memory_mb} MB)", fix) from None
    except WorkerCrash as exc:
        fix = "raise ingestion.parse_memory_mb, or re-save the file in its application"
        raise LoaderError(path, f"the parser crashed or ran out of memory ({exc})", fix) from None


_BOMB_RATIO = 200  # deflate reaches ~1000:1 on repeated bytes; real documents stay far below 200:1
_BOMB_MIN_SIZE = _MB  # small members (XML boilerplate) may compress well; only big ones are judged


def _check_zip(data: bytes, path: Path, max_unpacked: int) -> None:
    """Refuses a zip whose members would unpack to more than `max_unpacked` bytes, or compress absurdly.

    Only the central directory is read. Its sizes cannot lie to the parser: zipfile stops inflating a
    member at its declared size.
    """
    kind = path.suffix.lstrip(".").upper() or "zip"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except Exception as exc:
        reason = f"could not be parsed as {kind}: broken zip archive: {_short(exc)}"
        raise LoaderError(path, reason, "re-save or re-export the file") from None
    total = sum(m.file_size for m in members)
    if total > max_unpacked:
        reason = f"would unpack to {_mb(total)}, over the {_mb(max_unpacked)} limit (a zip bomb?)"
        raise LoaderError(path, reason, "raise ingestion.max_unpacked_mb if the file is genuine")
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > _BOMB_MIN_SIZE and ratio > _BOMB_RATIO:
            reason = f"member {m.filename!r} is compressed {ratio:.0f}:1 (a zip bomb?)"
            raise LoaderError(path, reason, "re-save the file in its application if it is genuine")


_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f\ufffd]")
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _decode(data: bytes, path: Path) -> str:
    """Decodes text: a BOM's encoding, else strict UTF-8, else a legacy encoding (`_decode_legacy`)."""
    binary = LoaderError(path, "looks binary, not text", "check the file type")
    for bom, encoding in _BOMS:  # UTF-16/32 text holds NULs, so BOMs are checked first
        if data.startswith(bom):
            try:
                return _not_binary(data.decode(encoding), path)
            except UnicodeDecodeError:
                raise binary from None
    if b"\x00" in data:
        raise binary
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _decode_legacy(data)
        if text is None:
            raise binary from None
    return _not_binary(text, path)


def _not_binary(text: str, path: Path) -> str:
    """Returns `text`, unless control or replacement characters say it was decoded from binary."""
    if len(_CONTROLS.findall(text)) > len(text) // 100:  # a few stray ones pass; many mean binary
        raise LoaderError(path, "looks binary, not text", "check the file type")
    return text


# Symbols a Western European (cp1252) text plausibly holds; ³ ¹ ¾ ¸ and such mostly come from
# misreading Central European or Cyrillic bytes, so they are left out.
_WESTERN = set("\u00a0«»°±§©®¶·¿¡€£¥¢“”‘’‚„–—…•™†‡‰×÷µºª")


def _decode_legacy(data: bytes) -> str | None:
    """Decodes non-UTF-8 bytes, or None when no encoding fits.

    charset-normalizer alone misreads short Western text (3.5 takes French Latin-1 for cp1257), so a
    cp1252 reading wins when it looks like Western prose: accented letters sprinkled among ASCII ones.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = ""
    high = re.findall(r"[^\x00-\x7f]", text)
    if text and all(c.isalpha() or c in _WESTERN for c in high):
        if sum(c.isalpha() for c in high) <= 0.5 * len(re.findall(r"[^\W\d_]", text)):
            return text
    import charset_normalizer

    # The default chaos threshold (0.2) refuses real cp1250 Polish prose; binary is caught by the caller.
    best = charset_normalizer.from_bytes(data, threshold=0.35).best()
    return str(best) if best is not None else None


# --- built-in loaders -------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@register_loader(".txt")
def _load_txt(data: bytes, path: Path) -> Extracted:
    return Extracted(normalise_text(_decode(data, path)))


@register_loader(".md")
@register_loader(".markdown")
def _load_markdown(data: bytes, path: Path) -> Extracted:
    fields, text = front_matter(normalise_text(_decode(data, path)))
    title = fields.pop("title", None)
    sections, offset, fence = [], 0, ""
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        if opener and (not fence or opener.group(1).startswith(fence)):
            fence = "" if fence else opener.group(1)  # `# comment` in a code block is no heading
        elif not fence and (m := _ATX.match(line)) and (m.group(2) or "").strip():
            sections.append([offset, m.group(2).strip()])
        offset += len(line) + 1
    return Extracted(text, title or (sections[0][1] if sections else None), {"sections": sections, **fields})


@register_loader(".pdf", sandboxed=True)
def _load_pdf(data: bytes, path: Path) -> Extracted:
    import pypdf

    if b"%PDF-" not in data[:1024]:  # checked here, so pypdf does not log a warning per bad file
        raise LoaderError(path, "could not be parsed as PDF: no %PDF- header")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # an empty user password opens many
            fix = "decrypt it first, e.g. qpdf --decrypt"
            raise LoaderError(path, "is encrypted (password-protected)", fix)
        pages = [normalise_text(page.extract_text() or "") for page in reader.pages]
        info = reader.metadata or {}
        title = info.get("/Title")
        fields = {"author": info.get("/Author"), "date": info.get("/CreationDate"), "modified": info.get("/ModDate")}
    except LoaderError:
        raise
    except Exception as exc:
        if b"%%EOF" in data[-1024:]:
            raise LoaderError(path, f"could not be parsed as PDF: {_short(exc)}") from exc
        reason = f"could not be parsed as PDF: it is truncated (no %%EOF at its end): {_short(exc)}"
        raise LoaderError(path, reason, "download or export it again") from exc
    text, starts = _join_blocks(pages)
    if not text:
        raise LoaderError(path, "has no text layer (a scanned PDF?)", "OCR it first, e.g. with ocrmypdf")
    spans = [[s, s + len(p), n] for n, (p, s) in enumerate(zip(pages, starts), 1) if s is not None]
    fields = {k: str(v) for k, v in fields.items() if v}
    return Extracted(text, str(title) if title else None, {"pages": spans, **fields})


@register_loader(".docx", sandboxed=True, archive=True)
def _load_docx(data: bytes, path: Path) -> Extracted:
    import docx

    try:
        doc = docx.Document(io.BytesIO(data))
        blocks = list(doc.iter_inner_content())  # paragraphs and tables, in document order
        core = doc.core_properties
        title = core.title
        fields = {"author": core.author, "date": core.created, "modified": core.modified}
    except Exception as exc:
        raise LoaderError(path, f"could not be parsed as DOCX: {_short(exc)}") from exc
    texts = [normalise_text(_docx_text(block)) for block in blocks]
    text, starts = _join_blocks(texts)
    sections = [
        [start, _one_line(t)]
        for block, t, start in zip(blocks, texts, starts)
        if start is not None and (getattr(block.style, "name", None) or "").startswith(("Heading", "Title"))
    ]
    return Extracted(text, title or None, {"sections": sections, **{k: v for k, v in fields.items() if v}})


def _docx_text(block: Any) -> str:
    """A paragraph's text, or a table's: one line per row, cells joined by " | "."""
    if not hasattr(block, "rows"):
        return block.text
    return "\n".join(" | ".join(dict.fromkeys(c.text.strip() for c in row.cells)) for row in block.rows)


def _join_blocks(blocks: list[str]) -> tuple[str, list[int | None]]:
    """Joins the non-empty blocks with blank lines; returns the text and each block's start (None: empty)."""
    starts: list[int | None] = []
    end = 0
    for block in blocks:
        start = (end + 2 if end else 0) if block else None
        starts.append(start)
        end = start + len(block) if start is not None else end
    return "\n\n".join(b for b in blocks if b), starts


_DROP = {"script", "style", "noscript", "nav", "footer", "header", "aside", "form", "template", "head"}
_LINE_BLOCKS = {"li", "dt", "dd", "tr", "option", "caption"}  # one newline, not a blank line
_BLOCKS = _LINE_BLOCKS | {
    "address", "article", "blockquote", "body", "details", "dialog", "div", "dl", "fieldset",
    "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hgroup", "hr", "html", "main", "ol",
    "p", "pre", "section", "summary", "table", "ul",
}  # fmt: skip


class _Lines:
    """Collects HTML text line by line; a block boundary ends the line and owes newlines."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.size, self.owed = 0, 0
        self.line: list[str] = []
        self.pre = False  # the current line is inside <pre>: keep its whitespace

    def add(self, text: str, pre: bool = False) -> None:
        self.line.append(text)
        self.pre |= pre

    def brk(self, newlines: int) -> None:
        text = "".join(self.line)
        text = normalise_text(text if self.pre else re.sub(r"[ \t\n\r\f]+", " ", text).strip())
        self.line, self.pre = [], False
        if text:
            if self.done:
                self.done.append("\n" * self.owed)
                self.size += self.owed
            self.done.append(text)
            self.size, self.owed = self.size + len(text), 0
        self.owed = max(self.owed, newlines)

    def next_offset(self) -> int:
        """Where the next line will start; call right after `brk`."""
        return self.size + (self.owed if self.done else 0)


@register_loader(".html", sandboxed=True)
@register_loader(".htm", sandboxed=True)
def _load_html(data: bytes, path: Path) -> Extracted:
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import PreformattedString

    soup = BeautifulSoup(data, "lxml")  # bytes: bs4 honours <meta charset> and detects the rest
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    fields = html_metadata(soup)
    out, sections, pre = _Lines(), [], 0
    stack: list[tuple[Any, bool]] = [(soup, False)]  # iterative: deep nesting must not recurse
    while stack:
        node, closing = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # skips comments, doctypes, CDATA
                out.add(str(node), pre > 0)
        elif isinstance(node, Tag) and (node.name not in _DROP or _in_content(node)):
            name = node.name
            if name in _BLOCKS or name == "br":
                out.brk(1 if name in _LINE_BLOCKS or name == "br" else 2)
            elif not closing and name in ("td", "th") and "".join(out.line).strip():
                out.add(" | ")
            if closing:
                pre -= name == "pre"
                continue
            if name in ("h1", "h2", "h3", "h4", "h5", "h6") and (heading := _one_line(node.get_text())):
                sections.append([out.next_offset(), heading])
            pre += name == "pre"
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
    out.brk(0)
    return Extracted(_not_binary("".join(out.done), path), title, {"sections": sections, **fields})


# --- small helpers ----------------------------------------------------------------------------------


def _in_content(tag: Any) -> bool:
    """A <header>/<footer> inside an article or section holds content (its title), not site chrome."""
    return tag.name in ("header", "footer") and tag.find_parent(("article", "main", "section")) is not None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _real(path: Path) -> Path:
    """The absolute path with links resolved; unlike `Path.resolve`, never raises on a link loop."""
    return Path(os.path.realpath(path.expanduser()))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _short(exc: BaseException) -> str:
    """A library exception in one short line, for a message a person reads."""
    text = _one_line(str(exc)) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 // 10 else f"{n} bytes"

