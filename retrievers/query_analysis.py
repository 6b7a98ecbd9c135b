"""Questions that name a source or a time: what they name, matched against what the index knows.

"As reported by The Verge", "in the email from March", "published on October 5, 2023", "last year's
report": the question names who published a document or when, and a passage's words seldom say either.
The index does (`ingestion.metadata`: ``site``/``author`` keyword fields, ``date`` datetime field). This
module finds such mentions with rules, no model:

- **sources**: the index's own ``site`` and ``author`` values (Qdrant facets) found in the question, exactly
  (case, punctuation and a leading "The" aside) or fuzzily (RapidFuzz partial ratio ≥ `FUZZY_MIN`, names of
  five characters or more, so "Techcrunch" and "the verge's" still match);
- **dates**: a day ("October 5, 2023", "5 Oct 2023", "2023-10-05"), or, after a word that says when a
  document was made ("published", "reported", "from", "dated", ...), a month ("March 2023") or a year; and
  relative periods ("yesterday", "last week", "last month", "this year", "last year") from today.

The retriever turns each mention into extra search legs restricted to it (a boost: the unrestricted legs
still run, so a wrong guess costs a few places, never the answer).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from retrievers.points import DateRange

FUZZY_MIN = 90
_MIN_FUZZY_CHARS = 5
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS["sept"] = 9
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY_FIRST = re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH + r",?\s+(?P<year>\d{4})\b", re.IGNORECASE)
_MONTH_FIRST = re.compile(r"\b" + _MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\b", re.IGNORECASE)
_ISO_DAY = re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})\b")
_CUE = r"(?:published|reported|posted|written|dated|released|issued|sent|from|of|in|on|during)"
_CUED_MONTH = re.compile(r"\b" + _CUE + r"\s+(?:early\s+|late\s+|mid-?)?" + _MONTH + r",?\s+(?P<year>\d{4})\b", re.IGNORECASE)
_CUED_YEAR = re.compile(r"\b(?:published|reported|posted|written|dated|released|issued|sent)\s+(?:in\s+)?(?P<year>\d{4})\b", re.IGNORECASE)
_RELATIVE = re.compile(r"\b(yesterday|today|last week|last month|this month|last year|this year)\b", re.IGNORECASE)


@dataclass(frozen=True)
class SourceMention:
    """A known source value the question names: which payload field holds it, and the words that named it."""

    field: str
    value: str
    said: str


@dataclass(frozen=True)
class DateMention:
    """A time the question names, as a range, and the words that named it."""

    range: DateRange
    said: str


@dataclass(frozen=True)
class Mentions:
    """What a question names: sources and times (both empty for most questions)."""

    sources: tuple[SourceMention, ...] = ()
    dates: tuple[DateMention, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sources or self.dates)


def analyse(question: str, known: dict[str, Sequence[str]], today: dt.date | None = None) -> Mentions:
    """The sources (among ``known``: payload field → values) and dates a question names."""
    return Mentions(find_sources(question, known), find_dates(question, today or dt.date.today()))


def find_sources(question: str, known: dict[str, Sequence[str]]) -> tuple[SourceMention, ...]:
    """Known values named in the question, longest first, each once; a value inside a longer match is skipped."""
    from rapidfuzz import fuzz

    text = _plain(question)
    found: list[SourceMention] = []
    candidates = sorted(((f, v) for f, values in known.items() for v in values if v.strip()), key=lambda fv: -len(fv[1]))
    for field, value in candidates:
        name = _plain(value)
        if not name or any(name in _plain(m.value) for m in found):
            continue
        if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
            found.append(SourceMention(field, value, value))
        elif len(name) >= _MIN_FUZZY_CHARS:
            match = fuzz.partial_ratio_alignment(name, text, score_cutoff=FUZZY_MIN)
            if match is not None and _whole_words(text, match.dest_start, match.dest_end):
                found.append(SourceMention(field, value, text[match.dest_start : match.dest_end]))
    return tuple(found)


def find_dates(question: str, today: dt.date) -> tuple[DateMention, ...]:
    """The days, cued months and years, and relative periods a question names, as ranges."""
    found: list[DateMention] = []
    taken: list[tuple[int, int]] = []

    def add(start: dt.date, end: dt.date, span: tuple[int, int]) -> None:
        if any(a < span[1] and span[0] < b for a, b in taken):
            return  # "October 5, 2023" is not also "October 2023"
        taken.append(span)
        found.append(DateMention(DateRange(_stamp(start), _stamp(end)), question[span[0] : span[1]]))

    for pattern in (_MONTH_FIRST, _DAY_FIRST, _ISO_DAY):
        for m in pattern.finditer(question):
            day = _day(m.group("year"), m.group("month"), m.group("day"))
            if day is not None:
                add(day, day + dt.timedelta(days=1), m.span())
    for m in _CUED_MONTH.finditer(question):
        month = _MONTHS[m.group("month").lower().rstrip(".")]
        year = int(m.group("year"))
        if 1000 <= year <= 9999:
            add(dt.date(year, month, 1), _next_month(dt.date(year, month, 1)), m.span("month")[:1] + m.span()[1:])
    for m in _CUED_YEAR.finditer(question):
        year = int(m.group("year"))
        if 1000 <= year <= 9998:
            add(dt.date(year, 1, 1), dt.date(year + 1, 1, 1), m.span("year"))
    for m in _RELATIVE.finditer(question):
        start, end = _relative(m.group(1).lower(), today)
        add(start, end, m.span())
    return tuple(found)


def _relative(phrase: str, today: dt.date) -> tuple[dt.date, dt.date]:
    if phrase in ("today", "yesterday"):
        day = today - dt.timedelta(days=phrase == "yesterday")
        return day, day + dt.timedelta(days=1)
    if phrase == "last week":
        monday = today - dt.timedelta(days=today.weekday())
        return monday - dt.timedelta(days=7), monday
    this_month = today.replace(day=1)
    if phrase == "this month":
        return this_month, _next_month(this_month)
    if phrase == "last month":
        return (this_month - dt.timedelta(days=1)).replace(day=1), this_month
    year = today.year - (phrase == "last year")
    return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)


def _day(year: str, month: str, day: str) -> dt.date | None:
    number = int(month) if month.isdigit() else _MONTHS[month.lower().rstrip(".")]
    try:
        return dt.date(int(year), number, int(day))
    except ValueError:
        return None


def _next_month(first: dt.date) -> dt.date:
    return dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _stamp(day: dt.date) -> str:
    return f"{day:%Y-%m-%d}T00:00:00Z"


def _plain(text: str) -> str:
    """Lower case, accents and punctuation gone, a leading "the " dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"['’]s\b", "", text)
    text = re.sub(r"[^\w\s]", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text.removeprefix("the ")


def _whole_words(text: str, start: int, end: int) -> bool:
    """The fuzzy match starts and ends at word edges (not "verge" inside "converge")."""
    return (start == 0 or not text[start - 1].isalnum()) and (end == len(text) or not text[end].isalnum())
