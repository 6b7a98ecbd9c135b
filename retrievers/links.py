"""Second hop by title links: a retrieved passage that names another document's title leads to that document.

Multi-hop questions ("Who directed the film shot in Leland, North Carolina in 1986?") need a document the
question does not name: the first hop finds the film's page, which names its director, whose own page holds
the answer. Wikipedia-style corpora (HotpotQA, MuSiQue) and many document sets (a report that cites
another by its title, notes that name a project) link this way. This module finds, in the top passages, the
capitalised phrases that are the titles of other indexed documents; the retriever then searches those
documents alone with the question and interleaves them after the first hop's best.

No model: a title is matched case-insensitively, with a trailing parenthesis ("Blue Velvet (film)") optional.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MAX_TITLE_WORDS = 8
_WORD = re.compile(r"[\w'’.&-]+")


def title_key(title: str) -> str:
    """A title as matched in text: its words in lower case (punctuation between them dropped), a trailing
    "(...)" left out."""
    return _key(_WORD.findall(re.sub(r"\s*\([^)]*\)\s*$", "", title)))


def _key(words: Sequence[str]) -> str:
    return " ".join(w.lower().rstrip(".") for w in words)


def title_index(titles: Iterable[str]) -> dict[str, list[str]]:
    """Known titles by `title_key` (several titles may share a key: "Mercury (planet)", "Mercury (element)")."""
    index: dict[str, list[str]] = {}
    for title in titles:
        if (key := title_key(title)) and len(key) > 2:
            index.setdefault(key, []).append(title)
    return index


def linked_titles(texts: Sequence[str], own: set[str], known: dict[str, list[str]], limit: int = 8) -> list[str]:
    """Titles of other documents named in ``texts`` (capitalised phrases of up to `MAX_TITLE_WORDS` words),
    in order of first mention, longest match first at each position; ``own`` titles (the hits' own, and
    those the question already found) are left out."""
    skip = {title_key(t) for t in own}
    found: list[str] = []
    for text in texts:
        words = [m.group() for m in _WORD.finditer(text)]
        i = 0
        while i < len(words):
            if not (words[i][0].isupper() or words[i][0].isdigit()):
                i += 1
                continue
            for n in range(min(MAX_TITLE_WORDS, len(words) - i), 0, -1):
                key = _key(words[i : i + n])
                if key in known and key not in skip:
                    found += [t for t in known[key] if t not in found]
                    skip.add(key)
                    i += n - 1
                    break
            i += 1
            if len(found) >= limit:
                return found[:limit]
    return found
