"""Loaders: one file in, one `Document` out, chosen by file extension (DESIGN.md, "Data flow").

Loaders live in a registry keyed by extension; the built-ins register through `register_loader` the
same way an extension would. A loader gets the file's bytes and returns an `Extracted` whose text is
already normalised (`normalise_text`), so the offsets it records ("sections", "pages") index straight
into `Document.text`. Every failure for a bad file surfaces as a `LoaderError` that names the file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.types import Document

log = logging.getLogger(__name__)


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
_LOADERS: dict[str, Loader] = {}


def register_loader(ext: str, fn: Loader | None = None) -> Any:
    """Registers `fn` for files ending in `ext`; without `fn`, returns a decorator.

    Args:
        ext: The extension, with or without the dot, any case (``".md"``, ``"md"``).
        fn: A loader ``(data: bytes, path: Path) -> Extracted``; a later registration replaces an earlier.
    """
    key = "." + ext.lower().lstrip(".")
    if key == ".":
        raise ValueError(f"register_loader: extension {ext!r} is empty (give one such as '.md')")

    def register(loader: Loader) -> Loader:
        _LOADERS[key] = loader
        return loader

    return register(fn) if fn is not None else register


def supported_extensions() -> frozenset[str]:
    """The extensions (lowercase, with the dot) that have a loader."""
    return frozenset(_LOADERS)


def normalise_text(text: str) -> str:
    """NFC, ``\\n`` line ends, no trailing whitespace on lines, no blank lines at either end."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def load_document(path: Path, *, max_bytes: int) -> Document:
    """Reads one file into a Document.

    Args:
        path: The file. Its resolved absolute path becomes `Document.source`; its hash `Document.id`.
        max_bytes: Larger files are refused before being read (sizes are reported in MB of 2**20 bytes).

    Raises:
        LoaderError: For any file that cannot be loaded, with the reason and, where there is one, a fix.
    """
    path = _real(Path(path))
    data = _read(path, max_bytes)
    try:
        out = _LOADERS[path.suffix.lower()](data, path)
    except LoaderError:
        raise
    except Exception as exc:  # a loader bug or library quirk must still name the file
        raise LoaderError(path, f"could not be loaded: {type(exc).__name__}: {_short(exc)}") from exc
    if not out.text.strip():
        raise LoaderError(path, "no text found", "check that the file has content")
    sections = out.metadata.get("sections") or []
    title = _one_line(out.title or "") or (sections[0][1] if sections else "") or path.stem
    doc_id = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Document(id=doc_id, source=str(path), title=title, text=out.text, metadata=out.metadata)


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
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoaderError(path, "file not found", "check the path") from None
    except OSError as exc:
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
    try:
        return path.read_bytes()
    except PermissionError:
        raise LoaderError(path, "permission denied", "make the file readable, e.g. chmod u+r") from None
    except OSError as exc:
        raise LoaderError(path, f"could not be read: {exc.strerror or exc}") from exc


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
    text = normalise_text(_decode(data, path))
    sections, offset, fence = [], 0, ""
    for line in text.split("\n"):
        opener = _FENCE.match(line)
        if opener and (not fence or opener.group(1).startswith(fence)):
            fence = "" if fence else opener.group(1)  # `# comment` in a code block is no heading
        elif not fence and (m := _ATX.match(line)) and (m.group(2) or "").strip():
            sections.append([offset, m.group(2).strip()])
        offset += len(line) + 1
    return Extracted(text, sections[0][1] if sections else None, {"sections": sections})


@register_loader(".pdf")
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
        title = reader.metadata.title if reader.metadata else None
    except LoaderError:
        raise
    except Exception as exc:
        raise LoaderError(path, f"could not be parsed as PDF: {_short(exc)}") from exc
    text, starts = _join_blocks(pages)
    if not text:
        raise LoaderError(path, "has no text layer (a scanned PDF?)", "OCR it first, e.g. with ocrmypdf")
    spans = [[s, s + len(p), n] for n, (p, s) in enumerate(zip(pages, starts), 1) if s is not None]
    return Extracted(text, str(title) if title else None, {"pages": spans})


@register_loader(".docx")
def _load_docx(data: bytes, path: Path) -> Extracted:
    import docx

    try:
        doc = docx.Document(io.BytesIO(data))
        blocks = list(doc.iter_inner_content())  # paragraphs and tables, in document order
        title = doc.core_properties.title
    except Exception as exc:
        raise LoaderError(path, f"could not be parsed as DOCX: {_short(exc)}") from exc
    texts = [normalise_text(_docx_text(block)) for block in blocks]
    text, starts = _join_blocks(texts)
    sections = [
        [start, _one_line(t)]
        for block, t, start in zip(blocks, texts, starts)
        if start is not None and (getattr(block.style, "name", None) or "").startswith(("Heading", "Title"))
    ]
    return Extracted(text, title or None, {"sections": sections})


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


@register_loader(".html")
@register_loader(".htm")
def _load_html(data: bytes, path: Path) -> Extracted:
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import PreformattedString

    soup = BeautifulSoup(data, "lxml")  # bytes: bs4 honours <meta charset> and detects the rest
    title = soup.title.get_text(" ", strip=True) if soup.title else None
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
    return Extracted(_not_binary("".join(out.done), path), title, {"sections": sections})


# --- small helpers ----------------------------------------------------------------------------------


def _in_content(tag: Any) -> bool:
    """A <header>/<footer> inside an article or section holds content (its title), not site chrome."""
    return tag.name in ("header", "footer") and tag.find_parent(("article", "main", "section")) is not None


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

