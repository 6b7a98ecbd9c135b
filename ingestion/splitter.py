"""Splits a document into passages that keep exact character offsets.

Why not llama-index's `SentenceSplitter`: it re-joins and re-spaces text, so offsets into the original
document (needed to map a passage to its PDF page and to highlight the cited span) must be recovered by
string search, which fails on repeated or re-spaced text. This splitter only ever slices the original.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from assistant.types import Document, Passage

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and whitespace, or at a
# blank line. Abbreviations like "e.g. x" may split early: harmless, since sentences are packed.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")


def _approx_tokens(text: str) -> int:
    """Word-piece count estimate (~1.3 per word) for when no tokenizer is given."""
    return int(len(text.split()) * 1.3) + 1


@dataclass(frozen=True)
class _Span:
    start: int
    end: int


class PassageSplitter:
    """Packs whole sentences into passages of about ``chunk_size`` tokens.

    Passages never cross a section heading or a page break, overlap by about ``chunk_overlap`` tokens of whole
    sentences, and a single sentence longer than ``chunk_size`` is cut at word boundaries.

    Args:
        chunk_size: Target passage length in tokens.
        chunk_overlap: Tokens repeated from the end of one passage at the start of the next.
        count_tokens: Token counter (the embedder's tokenizer); a word-based estimate by default.
    """

    def __init__(
        self,
        chunk_size: int = 220,
        chunk_overlap: int = 30,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        if chunk_size < 8:
            raise ValueError(f"chunk_size must be at least 8 tokens, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size={chunk_size}), got {chunk_overlap}")
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.count_tokens = count_tokens or _approx_tokens

    def split(self, document: Document) -> list[Passage]:
        """Returns the document's passages in order, ids ``{doc_id}:{index}``."""
        text = document.text
        sections = sorted(document.metadata.get("sections", []))
        pages = document.metadata.get("pages", [])
        # Sections and pages both bound passages, so each passage has one heading and one page to cite.
        cuts = {int(s[0]) for s in sections} | {int(p[0]) for p in pages}
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(text)), len(text)]
        passages: list[Passage] = []
        # A heading with no body of its own ("# Festival" straight above "## Tickets") is never a passage
        # alone: it would match questions about its topic and crowd out the text that answers them. It joins
        # the next part that has a body, as a breadcrumb in that part's heading ("Festival › Tickets").
        pending: tuple[int, list[str]] | None = None  # where waiting headings start, and their texts
        for lo, hi in zip(bounds, bounds[1:]):
            heading = _heading_at(sections, lo)
            if _heading_only(text[lo:hi], heading):
                if heading:
                    start, waiting = pending or (lo, [])
                    pending = (start, [*waiting, heading])
                continue
            waiting = pending[1] if pending else []
            for n, span in enumerate(self._pack(text, self._sentences(text, lo, hi))):
                start = pending[0] if pending and n == 0 else span.start
                own = _heading_at(sections, span.start)
                passages.append(
                    Passage(
                        id=f"{document.id}:{len(passages)}",
                        doc_id=document.id,
                        text=text[start : span.end],
                        start=start,
                        end=span.end,
                        page=_page_at(pages, span.start),
                        heading=" › ".join([*waiting, own]) if own else (" › ".join(waiting) or None),
                    )
                )
            pending = None
        if pending and not passages:  # a document that is only headings is still indexed, not lost
            start, waiting = pending
            end = len(text.rstrip())
            passages.append(
                Passage(f"{document.id}:0", document.id, text[start:end], start, end, _page_at(pages, start), " › ".join(waiting))
            )
        return passages

    def _sentences(self, text: str, lo: int, hi: int) -> Iterator[_Span]:
        """Yields stripped sentence spans of ``text[lo:hi]``, long ones cut to fit ``chunk_size``."""
        cursor = lo
        for match in _SENTENCE_END.finditer(text, lo, hi):
            yield from self._fit(text, cursor, match.start())
            cursor = match.end()
        yield from self._fit(text, cursor, hi)

    def _fit(self, text: str, start: int, end: int) -> Iterator[_Span]:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            return
        if self.count_tokens(text[start:end]) <= self.chunk_size:
            yield _Span(start, end)
            return
        # An over-long "sentence" (a table, a list without stops): cut at word boundaries.
        words = [m.span() for m in re.finditer(r"\S+", text[start:end])]
        piece_start = 0
        while piece_start < len(words):
            piece_end = piece_start + 1
            while (
                piece_end < len(words)
                and self.count_tokens(text[start + words[piece_start][0] : start + words[piece_end][1]])
                <= self.chunk_size
            ):
                piece_end += 1
            yield _Span(start + words[piece_start][0], start + words[piece_end - 1][1])
            piece_start = piece_end

    def _pack(self, text: str, sentences: Iterator[_Span]) -> Iterator[_Span]:
        window: list[tuple[_Span, int]] = []  # sentences in the current passage with their token counts
        size = 0
        for sentence in sentences:
            tokens = self.count_tokens(text[sentence.start : sentence.end])
            if window and size + tokens > self.chunk_size:
                yield _Span(window[0][0].start, window[-1][0].end)
                # Keep trailing sentences worth at most chunk_overlap tokens as the next passage's start.
                kept: list[tuple[_Span, int]] = []
                kept_size = 0
                for item in reversed(window):
                    if kept_size + item[1] > self.chunk_overlap or kept_size + item[1] + tokens > self.chunk_size:
                        break
                    kept.insert(0, item)
                    kept_size += item[1]
                window, size = kept, kept_size
            window.append((sentence, tokens))
            size += tokens
        if window:
            yield _Span(window[0][0].start, window[-1][0].end)


def _heading_only(part: str, heading: str | None) -> bool:
    """True when ``part`` has no words beyond its heading (Markdown's ``#`` marks and spacing aside)."""
    body = part.replace(heading, "", 1) if heading else part
    return not re.search(r"\w", body)


def _page_at(pages: list[list[int]], offset: int) -> int | None:
    """The page holding ``offset``, from loader metadata ``[[start, end, page_no], ...]``."""
    for start, end, page_no in pages:
        if start <= offset < end:
            return int(page_no)
    return None


def _heading_at(sections: list[list], offset: int) -> str | None:
    """The nearest heading at or above ``offset``, from metadata ``[[start, heading], ...]``."""
    starts = [int(s[0]) for s in sections]
    i = bisect.bisect_right(starts, offset) - 1
    return str(sections[i][1]) if i >= 0 else None
