"""Does a retrieved passage support an answer sentence? A lexical entailment check with measured thresholds.

A sentence is checked against the passages it cites (an uncited sentence: against every retrieved passage):

- **names and numbers must match exactly**: every number ("1,642" = "1642") and every capitalised name in
  the sentence occurs in the passage. A swapped year or person is the commonest confident error, and word
  overlap alone cannot see it;
- **content coverage**: the share of the sentence's content words (Porter-stemmed, stopwords dropped) that
  occur in the passage's best window of ``window`` consecutive sentences reaches ``coverage``.

Words the question already holds are premises, not claims ("How much is a ticket?" → "A ticket costs 12
euros": only "12" and "euros" need support), where the passage is about the question and the sentence adds
words of its own; names and numbers are always checked. The thresholds were chosen on a
labelled set built from the dev data (`eval/support_study.py`; docs/EVALUATION.md, "Support check"):
copied and paraphrased gold answers as supported, swapped names/numbers and RGB's falsified facts as not.
What a lexical check cannot see — a true sentence of the passage offered as the answer to a question it
does not answer — is the job of abstention and of a model verifier where one is capable; the study reports
how often that happens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

from assistant.citations import cited_numbers
from assistant.types import Hit

COVERAGE = 1.0
"""Default share of a sentence's own content words its passage must hold: all of them (chosen in
eval/support_study.py: lower thresholds let a swapped phrase inside a long copied sentence pass)."""
WINDOW = 3
"""Default consecutive passage sentences a claim may draw on."""

_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
# A sentence ends at . ! ? before a capital, digit or quote; a citation marker after the stop stays with it.
_SENTENCE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(])|\n+")
_STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or but nor not no is are was were be been being am it its
    this that these those as into onto over under than then so such there here which who whom whose what when
    where why how do does did done has have had having can could should would will shall may might must i you
    he she we they them his her their our your my me us him about also only just very more most some any each
    all both either neither other another same own s t yes""".split()
)
# Snowball's Porter stemmer, not NLTK's: importing nltk pulls in scipy.stats and took 1.6 s of every
# `tessera ask`; snowballstemmer imports in 10 ms. The two agree on 98 % of the dev corpora's words, and the
# support study scores the same with either (docs/EVALUATION.md §7).
_STEMMER = snowballstemmer.stemmer("porter")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def content_words(text: str) -> set[str]:
    """Stemmed, lower-cased words of ``text`` without stopwords or citation markers."""
    return {_stem(w) for w in _WORD.findall(_MARKER.sub(" ", text).lower()) if w not in _STOPWORDS}


def numbers_in(text: str) -> set[str]:
    """The numbers in ``text``, thousands separators and trailing points dropped ("1,642." → "1642")."""
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(_MARKER.sub(" ", text))}


def names_in(sentence: str) -> set[str]:
    """Lower-cased capitalised words after a sentence's first word (names, places, titles)."""
    words = _WORD.findall(_MARKER.sub(" ", sentence))
    return {w.lower() for w in words[1:] if w[:1].isupper() and w.lower() not in _STOPWORDS}


def sentences(text: str) -> list[str]:
    """The sentences of an answer or a passage, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


@dataclass(frozen=True)
class Support:
    """The verdict on one answer sentence.

    Attributes:
        sentence: The sentence, with its markers.
        cited: The valid source numbers it cites.
        source: The source that supports it best (1-based), or None when no passage was checked.
        coverage: Share of its own content words found in that source's best window (1.0 when it has none).
        missing: Numbers and names of the sentence that source does not contain.
        supported: Whether it passed.
    """

    sentence: str
    cited: tuple[int, ...]
    source: int | None
    coverage: float
    missing: tuple[str, ...]
    supported: bool


class SupportChecker:
    """Checks each sentence of an answer against the passages it cites.

    Args:
        coverage: Share of a sentence's own content words its passage must hold.
        window: Consecutive passage sentences a sentence may draw on.
    """

    def __init__(self, coverage: float = COVERAGE, window: int = WINDOW) -> None:
        if not 0.0 <= coverage <= 1.0:
            raise ValueError(f"coverage must be in [0, 1], got {coverage}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.coverage = coverage
        self.window = window

    def check(self, answer: str, hits: Sequence[Hit], question: str = "") -> list[Support]:
        """One `Support` per sentence of ``answer``, in order."""
        given = self.premises(question)
        return [self.check_sentence(s, hits, given) for s in sentences(answer)]

    @staticmethod
    def premises(question: str) -> set[str]:
        """The question's content words: what an answer may repeat without support (see `_score`)."""
        return content_words(question)

    def check_sentence(
        self, sentence: str, hits: Sequence[Hit], given: set[str] = frozenset()
    ) -> Support:
        """The verdict on one sentence: against its cited sources, or (uncited) against every source.

        A cited sentence its sources do not support, but another retrieved source does, is supported with
        ``source`` set to that one: the model read the fact, and numbered it wrong.
        """
        cited = tuple(n for n in cited_numbers(sentence) if 1 <= n <= len(hits))
        words = content_words(sentence)
        exact = numbers_in(sentence) | names_in(sentence)

        def best_of(numbers: Sequence[int]) -> Support | None:
            verdicts = []
            for n in numbers:
                coverage, missing = self._score(words, exact, given, _checked_text(hits[n - 1]))
                verdicts.append(Support(sentence, cited, n, coverage, missing, not missing and coverage >= self.coverage))
            return max(verdicts, key=lambda v: (v.supported, -len(v.missing), v.coverage), default=None)

        if not cited:
            best = best_of(range(1, len(hits) + 1))
            return best or Support(sentence, cited, None, 0.0, tuple(sorted(exact)), False)
        own = best_of(cited)
        assert own is not None
        if own.supported:
            return own
        other = best_of([n for n in range(1, len(hits) + 1) if n not in cited])
        return other if other is not None and other.supported else own

    def _score(self, words: set[str], exact: set[str], given: set[str], passage: str) -> tuple[float, tuple[str, ...]]:
        """Coverage of the sentence by the passage's best window, and the names/numbers the passage lacks.

        The question's words are premises only where the passage is about the question (its window holds at
        least half of the question's content words), and only for a sentence that adds words of its own: "A
        ticket costs 12 euros" rests on a passage about tickets without saying "costs", but restating the
        question — over an unrelated passage, or as its own answer — rests on nothing. Names and numbers are
        never premises.
        """
        lowered = _MARKER.sub(" ", passage).lower()
        passage_words = {w.lower() for w in _WORD.findall(lowered)}
        passage_numbers = numbers_in(passage)
        units = [content_words(s) for s in sentences(passage)] or [set()]
        best, best_missing = -1.0, tuple(sorted(exact))
        for start in range(len(units)):
            window = set().union(*units[start : start + self.window])
            about = bool(given) and sum(_found(w, window) for w in given) >= len(given) / 2
            # A sentence that only restates the question ("The gold was panned from the River Tay.") claims
            # its presupposition: then every word needs support. Names and numbers always do.
            required = (words - given) if about and words - given else words
            missing = tuple(sorted(e for e in exact if e not in passage_numbers and e not in passage_words))
            coverage = sum(_found(w, window) for w in required) / len(required) if required else 1.0
            if (-len(missing), coverage) > (-len(best_missing), best):
                best, best_missing = coverage, missing
        return max(best, 0.0), best_missing


def _checked_text(hit: Hit) -> str:
    """What the generator read of a source: its title and its text (`assistant.prompts.source_blocks`)."""
    return f"{hit.title}: {hit.text}" if hit.title else hit.text


def _found(word: str, stems: set[str]) -> bool:
    """The stem occurs, or shares a 5+ letter prefix with one (gravitational / gravity: "gravit", "graviti")."""
    if word in stems:
        return True
    if len(word) < 5:
        return False
    return any(len(stem) >= 5 and (stem.startswith(word) or word.startswith(stem)) for stem in stems)
