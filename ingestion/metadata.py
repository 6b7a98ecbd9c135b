"""What a document says about itself: author, site or publisher, dates, file name.

Loaders read the format's own fields (HTML meta tags, PDF info, DOCX core properties, Markdown front matter)
and hand them here to be normalised into a few descriptive keys of `Document.metadata`:

- ``author``: who wrote it; ``site``: the outlet, site or publisher;
- ``date``: when it was published (or created), ``modified``: when it last changed, both RFC 3339 UTC
  (``2023-10-05T00:00:00Z``), the form Qdrant's datetime payload index reads;
- ``file_name``: the file's name.

The ingestion pipeline copies these into every passage's payload (keyword and datetime payload indexes) and
into the short header each passage is indexed with, so a question that names an outlet or a date can match.
Unparseable or empty values are dropped, never guessed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from typing import Any

DESCRIPTIVE = ("author", "site", "date", "modified", "file_name")
DATES = ("date", "modified")
_MAX_CHARS = 200  # a metadata value is a name or a date, not a paragraph


def describe(raw: dict[str, Any]) -> dict[str, str]:
    """The descriptive keys of ``raw`` (a loader's or a dataset's metadata), normalised; the rest ignored."""
    out: dict[str, str] = {}
    for key in DESCRIPTIVE:
        value = raw.get(key)
        if key in DATES:
            found = normalise_date(value)
        else:
            found = _one_line(", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value)
        if found:
            out[key] = found
    return out


def normalise_date(value: Any) -> str | None:
    """An RFC 3339 UTC timestamp for a date in the usual forms, or None.

    Reads datetimes, Unix times, ISO 8601 (``2023-10-05``, ``2023-10-05T14:30:00+02:00``), RFC 2822 (e-mail, RSS), PDF's
    ``D:20231005143000+02'00'`` and ``October 5, 2023`` / ``5 October 2023``. A naive time is taken as UTC.
    """
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):  # a Unix time (a file's mtime)
        try:
            moment = dt.datetime.fromtimestamp(value, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str) and value.strip():
        moment = _parse(value.strip())
        if moment is None:
            return None
    else:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if not 1000 <= moment.year <= 9999:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> dt.datetime | None:
    pdf = re.fullmatch(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:([+-])(\d{2})'?(\d{2})?'?|Z.*)?", text)
    if pdf:
        y, mo, d, h, mi, s, sign, oh, om = pdf.groups()
        zone = dt.timezone.utc
        if sign:
            offset = dt.timedelta(hours=int(oh), minutes=int(om or 0))
            zone = dt.timezone(offset if sign == "+" else -offset)
        try:
            return dt.datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0), tzinfo=zone)
        except ValueError:
            return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    for pattern in ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y/%m/%d", "%B %Y"):
        try:
            return dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def _one_line(value: Any) -> str | None:
    if value is None:
        return None
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text[:_MAX_CHARS] or None


# --- what each format calls these fields -------------------------------------------------------------

# HTML <meta name|property=... content=...>, first match wins (Open Graph, Dublin Core, schema.org, news sites).
HTML_META = {
    "author": ("author", "article:author", "dc.creator", "dcterms.creator", "byl", "parsely-author", "sailthru.author"),
    "site": ("og:site_name", "application-name", "publisher", "dc.publisher", "dcterms.publisher", "twitter:site"),
    "date": (
        "article:published_time", "datePublished", "date", "pubdate", "publish_date", "publication_date",
        "dc.date", "dcterms.created", "dc.date.issued", "sailthru.date", "parsely-pub-date", "og:published_time",
    ),
    "modified": ("article:modified_time", "dateModified", "og:updated_time", "last-modified", "dcterms.modified"),
}  # fmt: skip

# Markdown front matter keys (Jekyll, Hugo, Obsidian, Pandoc) per descriptive key.
FRONT_MATTER = {
    "author": ("author", "authors", "creator", "by"),
    "site": ("site", "source", "publisher", "outlet", "publication"),
    "date": ("date", "published", "publish_date", "pubdate", "created"),
    "modified": ("modified", "updated", "lastmod", "last_modified"),
}
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)


def html_metadata(soup: Any) -> dict[str, Any]:
    """The descriptive fields of a parsed HTML page's <meta> tags (and a <time datetime> for the date)."""
    found: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        key = (tag.get("name") or tag.get("property") or tag.get("itemprop") or "").strip().lower()
        content = tag.get("content")
        if key and isinstance(content, str) and content.strip():
            found.setdefault(key, content.strip())
    out: dict[str, Any] = {}
    for field, names in HTML_META.items():
        for name in names:
            if name.lower() in found:
                out[field] = found[name.lower()]
                break
    if "date" not in out and (time := soup.find("time", attrs={"datetime": True})) is not None:
        out["date"] = time["datetime"]
    return out


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Splits YAML front matter (``---`` ... ``---`` at the very start) from a Markdown text.

    Returns the descriptive fields it names (plus ``title``) and the text without it; a text without valid
    front matter comes back whole with {}.
    """
    match = _FRONT.match(text)
    if not match:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    lowered = {str(k).lower(): v for k, v in data.items()}
    out: dict[str, Any] = {}
    if isinstance(lowered.get("title"), str):
        out["title"] = lowered["title"]
    for field, names in FRONT_MATTER.items():
        for name in names:
            if lowered.get(name) not in (None, "", []):
                out[field] = lowered[name]
                break
    return out, text[match.end() :]
