"""Passages → propositions: atomic, self-contained statements (Dense X Retrieval, Chen et al. 2023).

`create_extractor` picks one by name: "rules" (`DeterministicExtractor`, the offline default), "llm"
(`LLMPropositionizer`) or "off"; `build_extractor` does so from the settings. Each `PropositionSpan`
carries the document offsets of its source span.

The rules, in order (examples in quotes):

1. Blocks: a blank line, heading, bullet (``- * + •``), numbered item or quote (``>``) starts a block;
   other line breaks are wrapped text. Markers are stripped; headings are labels, not statements, and
   are dropped: ``"- The tower is tall."`` → ``"The tower is tall."``, ``"# Eiffel Tower"`` → nothing.
2. Sentences end at ``. ! ?`` (and closing quotes) before whitespace, not after an abbreviation or an
   initial (``"Dr. J. R. Smith met her in the U.S."`` is one sentence) nor before a lowercase letter.
3. Clauses: a sentence is cut at ``"; "`` or ``", and|but|while|whereas "`` outside brackets and quotes
   when both sides have ≥ 4 words and a verb-like word (the right side before its first comma), the
   right side opens with its own subject (not a quotation) and the left does not end in a list item
   (``"A, B, and C …"``);
   the conjunction is dropped: ``"Denver won the title, and Carolina lost the game."`` → ``"Denver won
   the title."`` + ``"Carolina lost the game."``; ``"It was designed by Eiffel, and was built in 1889."``
   stays whole. ``", which"`` is never cut (a relative clause cannot stand alone).
4. Clean-up: whitespace collapsed, a leading connective dropped (``"However, the tower…"`` → ``"The
   tower…"``), first letter capitalised, a final ``.`` added; fragments under 3 words dropped.
5. Pronouns: a leading It/He/She/They/This/These becomes the passage's subject, Its/His/Her/Their its
   possessive: ``"It was completed in 1889."`` → ``"The Eiffel Tower was completed in 1889."``, ``"Its
   height …"`` → ``"The Eiffel Tower's height …"``. The subject is the document title when the passage
   mentions it, as the text writes it (``"the Eiffel Tower"``), else the capitalised noun phrase that
   opens the first sentence before a verb (``"Marie Curie was a physicist."`` → ``"Marie Curie"``).
   Left alone when ambiguous or unsafe:
   - the first sentence opens with a pronoun, or its clauses or the title name different entities
     (``"Gustave Eiffel designed the Eiffel Tower. He …"``);
   - the statement before does not open with the subject, so the topic may have moved (``"Newton
     passed. He …"`` in a passage about Manning);
   - number disagrees (They vs. a singular name); He/She/His/Her for a "The X" subject;
   - This/These other than ``"This is a …"`` (``"This design …"``, ``"This led to …"``), and an
     expletive It (``"It is believed that …"``).

`LLMPropositionizer` sends the paper's Propositionizer prompt (its Figure 8; the Eostre example cut to
one sentence so small local models stay fast), takes the first JSON list of strings in the reply,
validates it, retries with a correction, then falls back to the rules.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.config import Settings
from assistant.models.base import Generator, Message
from assistant.types import Document, Passage


@dataclass(frozen=True)
class PropositionSpan:
    """One proposition and the document span it was derived from.

    Attributes:
        text: The standalone statement.
        start: Document offset of the source span's first character.
        end: Document offset one past the source span's last character.
    """

    text: str
    start: int
    end: int


class PropositionExtractor(ABC):
    """Decomposes passages into propositions."""

    name: str = ""

    @abstractmethod
    def extract(self, passage: Passage, document: Document) -> list[PropositionSpan]:
        """Returns the passage's propositions in text order ([] when it states nothing)."""

    def extract_many(self, items: Sequence[tuple[Passage, Document]]) -> list[list[PropositionSpan]]:
        """Extracts from many passages; a batching backend may override this."""
        return [self.extract(passage, document) for passage, document in items]


class NoExtractor(PropositionExtractor):
    """``off``: no propositions (passages only)."""

    name = "off"

    def extract(self, passage: Passage, document: Document) -> list[PropositionSpan]:
        return []


# ---------------------------------------------------------------- deterministic rules
_MARKER = re.compile(r"[ \t]*(?:#{1,6}[ \t]+|#{1,6}$|[-*+•][ \t]+|\d{1,3}[.)][ \t]+|>[ \t]?)+")
_SENT_END = re.compile(r"([.!?][\"'”’)\]]*)\s+")
_ABBREV = frozenset("mr mrs ms dr prof st jr sr vs etc e.g i.e cf no nos inc ltd co corp mt gen col lt sgt "
                    "capt fig al approx est dept univ jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k "
                    "a.m p.m rev fr hon gov sen rep pres ave".split())
_CLAUSE_CUT = re.compile(r";\s+|,\s+(?:and|but|while|whereas)\s+")
_SUBJECT_START = re.compile(r"[A-Z0-9]|(?:the|an?|this|these|those|its|his|her|their|it|he|she|they|"
                            r"we|there|some|many|most|both|each|all|no)\b")
_VERBISH = re.compile(
    r"\b(?:is|are|was|were|be|been|has|have|had|do|does|did|will|would|can|could|may|might|must|"
    r"shall|should|[a-z]\w+ed|became|becomes|began|begins|made|makes|took|takes|won|wins|lost|went|"
    r"goes|came|comes|gave|gives|held|holds|led|leads|left|wrote|writes|built|found|saw|said|says|"
    r"grew|ran|fell|met|sold|bought|brought|taught|thought|told|kept|set|put|got|knew|drew|rose|"
    r"spoke|stood|fought|sent|spent|paid|chose|include|includes|contain|contains|remain|remains|lies|"
    r"seems|uses|runs|means|needs|allows|requires|provides|lives)\b"
)
_CONNECTIVE = re.compile(r"^(?:however|therefore|thus|moreover|furthermore|instead|consequently|meanwhile|also|"
                         r"in addition|in particular|as a result),\s*", re.I)
_PRONOUN_LEAD = re.compile(r"(It|He|She|They|This|These|Its|His|Her|Their)\b\s*")
_OPENS_WITH_PRONOUN = re.compile(r"(?:It|He|She|They|This|These|Its|His|Her|Their|That|Those|We|I)\b")
_EXPLETIVE = re.compile(r"It\s+(?:is|was|has been|had been|seems|seemed|appears|appeared|remains|remained)\s+"
                        r"(?:\S+\s+){0,2}?(?:that|to|whether|how|why|when)\b")
_CAP = r"[A-Z][\w'’.&-]*"
_LEADING_NP = re.compile(rf"((?:The\s+)?{_CAP}(?:\s+(?:(?:of|the|de|von|van|der|du|la|and)\s+)*(?:{_CAP}|\d+\b))*)"
                         r"(?:\s*\([^)]*\))?,?\s+(\w+)")
_NOT_A_NAME = frozenset("a an in on at after before during since although while when if as by for from with without "
                        "under over according despite because though unlike like between among within following "
                        "until upon through however also today later then here there some many most each every "
                        "all both no one".split())
_WORD = re.compile(r"\w+")
_PLURAL = {"They", "These", "Their"}


def _blocks(text: str) -> list[tuple[int, int]]:
    """Non-heading blocks of ``text`` as ``(start, end)`` with list/quote markers stripped (rule 1)."""
    blocks: list[list[int]] = []
    pos, joinable = 0, False
    for line in text.splitlines(keepends=True):
        start, end = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        body = text[start:end]
        if not body.strip():
            joinable = False
            continue
        marker = _MARKER.match(body)
        if body.lstrip().startswith("#"):
            joinable = False  # a heading: dropped, and it ends the block above it
        elif marker or not joinable:
            blocks.append([start + (marker.end() if marker else 0), end])
            joinable = True
        else:
            blocks[-1][1] = end  # a wrapped line continues its block
    return [(s, e) for s, e in blocks if text[s:e].strip()]


def _sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (rule 2), stripped of surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    for lo, hi in _blocks(text):
        cursor = lo
        for m in _SENT_END.finditer(text, lo, hi):
            token = text[max(cursor, m.start() - 12) : m.start() + 1].split()[-1].lstrip("(\"'“").lower()
            initial = len(token) == 2 and token[0].isalpha()
            abbrev = m.group(1)[0] == "." and (token.rstrip(".") in _ABBREV or initial)
            if abbrev or text[m.end() : m.end() + 1].islower():
                continue
            spans.append((cursor, m.end(1)))
            cursor = m.end()
        spans.append((cursor, hi))
    return [(s, e) for s, e in (_strip(text, s, e) for s, e in spans) if s < e]


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    piece = text[start:end]
    return start + len(piece) - len(piece.lstrip()), end - len(piece) + len(piece.rstrip())


def _clause_like(text: str) -> bool:
    text = re.sub(r"\([^)]*\)", "", text)  # "(burned down)" is not the clause's verb
    return len(_WORD.findall(text)) >= 4 and _VERBISH.search(text) is not None


def _clauses(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Cuts one sentence into independent clauses (rule 3)."""
    spans, left = [], lo
    for m in _CLAUSE_CUT.finditer(text, lo, hi):
        before, right = text[lo : m.start()], _CONNECTIVE.sub("", text[m.end() : hi])
        nested = any(before.count(o) > before.count(c) for o, c in ("()", "“”")) or before.count('"') % 2
        own_subject = _SUBJECT_START.match(right)
        in_list = len(_WORD.findall(before.rsplit(",", 1)[-1])) < 4  # "A, B, and C …" is one statement
        # The right side's verb comes before its first comma: "…, and the X Center, and holds ties" is a list.
        right_clause = _clause_like(re.split(r"[,;]", right, maxsplit=1)[0])
        if own_subject and right_clause and not (nested or in_list) and _clause_like(text[left : m.start()]):
            spans.append((left, m.start()))
            left = m.end()
    spans.append((left, hi))
    return spans


def _clean(fragment: str) -> str:
    """Rule 4: normalised text of a clause, or "" when it is too short to state anything."""
    text = _CONNECTIVE.sub("", " ".join(fragment.split()).strip(" ,;:"), count=1)
    if len(_WORD.findall(text)) < 3:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?\"'”’)" else text + "."


def _looks_plural(subject: str) -> bool:
    last = subject.split()[-1]
    return (last.endswith("s") and not last.endswith(("ss", "us", "is", "'s", "’s"))) or " and " in subject


def _keys(phrase: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(phrase)} - {"the", "of", "and"}


class DeterministicExtractor(PropositionExtractor):
    """Rule-based propositions: sentences and clauses with leading pronouns resolved (module docstring)."""

    name = "rules"

    def extract(self, passage: Passage, document: Document) -> list[PropositionSpan]:
        text = passage.text or ""
        sentences = _sentences(text)
        if not sentences:
            return []
        subject = self._subject(text[slice(*sentences[0])], passage, document)
        n_words = len(subject.split()) if subject else 0
        out: list[PropositionSpan] = []
        for s_lo, s_hi in sentences:
            for lo, hi in _clauses(text, s_lo, s_hi):
                lo, hi = _strip(text, lo, hi)
                clean = _clean(text[lo:hi])
                if not clean:
                    continue
                # The subject must still be the topic: the statement before opens with it.
                if subject and out and _keys(subject) <= _keys(" ".join(out[-1].text.split()[: n_words + 1])):
                    clean = _resolve(clean, subject)
                out.append(PropositionSpan(clean, passage.start + lo, passage.start + hi))
        return out

    def _subject(self, first: str, passage: Passage, document: Document) -> str | None:
        """The passage's unambiguous subject for pronoun replacement, or None (rule 5)."""
        if _OPENS_WITH_PRONOUN.match(first):
            return None
        nps = {_leading_np(_clean(first[lo:hi])) for lo, hi in _clauses(first, 0, len(first))} - {None}
        if len({frozenset(_keys(n)) for n in nps}) > 1:
            return None  # clauses of the first sentence have different subjects
        np_ = next(iter(nps), None)
        title = _find_title(document.title, passage.text)
        if title and np_ and not (_keys(title) <= _keys(np_) or _keys(np_) <= _keys(title)):
            return None  # two different candidate subjects
        return np_ if np_ and (not title or _keys(np_) == _keys(title)) else title


def _leading_np(sentence: str) -> str | None:
    """The capitalised noun phrase opening ``sentence`` right before a verb, else None."""
    m = _LEADING_NP.match(sentence)
    if m and _VERBISH.fullmatch(m.group(2)) and m.group(1).split()[0].lower() not in _NOT_A_NAME:
        return m.group(1).rstrip(".,")
    return None


def _find_title(title: str, text: str) -> str | None:
    """The document title as the text writes it (``"The Eiffel Tower"``), or None if not mentioned."""
    title = re.sub(r"\s*\([^)]*\)", "", title or "")
    if " " not in title and re.search(r"\.[A-Za-z0-9]{1,5}$", title):
        title = title.rsplit(".", 1)[0]  # a file name
    words = title.replace("_", " ").split()
    if not words or len("".join(words)) < 2:
        return None
    pattern = r"\b(?:the\s+)?" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
    bare, with_the = [], []
    text = re.sub(r"(?m)^[ \t]*#.*$", "", text)  # headings write the bare title
    for m in re.finditer(pattern, text, re.I):
        found = " ".join(m.group().split())
        has_the = found[:4].lower() == "the " and len(found.split()) > len(words)
        if (found[4:] if has_the else found)[:1].islower():
            continue  # names are capitalised: "Apple" the title is not "apple" the fruit
        if not has_the:
            bare.append(found)
        elif not re.match(r"\s+[A-Z0-9]", text[m.end() :]):  # not part of a longer name ("the Warsaw Pact")
            with_the.append(found)
    best = with_the[0] if len(with_the) > len(bare) else (bare or [None])[0]
    return best[0].upper() + best[1:] if best else None


def _resolve(text: str, subject: str) -> str:
    """Replaces a leading pronoun with ``subject`` where that is safe (rule 5)."""
    m = _PRONOUN_LEAD.match(text)
    if not m:
        return text
    pronoun, rest = m.group(1), text[m.end() :]
    if (pronoun in _PLURAL) != _looks_plural(subject):
        return text
    if pronoun in ("He", "She", "His", "Her") and subject.startswith("The "):
        return text  # a person is not "the X"
    if pronoun in ("This", "These") and not re.match(r"(?:is|are|was|were) (?:a|an|the|one)\b", rest):
        return text  # a determiner ("This design …") or an event ("This led to …"), not the subject
    if pronoun == "It" and _EXPLETIVE.match(text):
        return text
    if pronoun in ("Its", "His", "Her", "Their"):
        subject += "'" if subject.endswith("s") and _looks_plural(subject) else "'s"
    return f"{subject} {rest}"


# ---------------------------------------------------------------- LLM propositionizer
# The paper's prompt (Figure 8), verbatim but for the example, cut to its first sentence.
_INSTRUCTIONS = (
    'Decompose the "Content" into clear and simple propositions, ensuring they are interpretable out of context.\n'
    "1. Split compound sentence into simple sentences. Maintain the original phrasing from the input whenever "
    "possible.\n"
    "2. For any named entity that is accompanied by additional descriptive information, separate this "
    "information into its own distinct proposition.\n"
    "3. Decontextualize the proposition by adding necessary modifier to nouns or entire sentences and replacing "
    'pronouns (e.g., "it", "he", "she", "they", "this", "that") with the full name of the entities they refer to.\n'
    "4. Present the results as a list of strings, formatted in JSON.\n\n"
    "Input: Title: Eostre. Section: Theories and interpretations, Connection to Easter Hares. Content: The "
    "earliest evidence for the Easter Hare (Osterhase) was recorded in south-west Germany in 1678 by the professor "
    "of medicine Georg Franck von Franckenau, but it remained unknown in other parts of Germany until the 18th "
    "century.\n"
    'Output: ["The earliest evidence for the Easter Hare was recorded in south-west Germany in 1678 by Georg '
    'Franck von Franckenau.", "Georg Franck von Franckenau was a professor of medicine.", "The evidence for the '
    'Easter Hare remained unknown in other parts of Germany until the 18th century."]\n\n'
)
_RETRY = "That was not a valid JSON list of strings. Reply with only the JSON list of propositions for the Content."
_MAX_ITEMS, _MAX_CHARS = 50, 400
_JSON_STRING = re.compile(r'\s*("(?:[^"\\\n]|\\.)*")\s*,?')


def parse_json_list(reply: str) -> list | None:
    """The first JSON list of strings in ``reply`` (fences and chatter around it are ignored).

    A list cut off by the token limit (``["a", "b", "c``) yields its complete strings (``["a", "b"]``).
    """
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"\[", reply or "")]
    for i in starts:
        try:
            value, _ = decoder.raw_decode(reply, i)
        except ValueError:
            continue
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    for i in starts:  # salvage an unterminated list
        items, pos = [], i + 1
        while m := _JSON_STRING.match(reply, pos):
            items.append(json.loads(m.group(1)))
            pos = m.end()
        if items and "]" not in reply[pos:]:
            return items
    return None


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _WORD.findall(text.lower()) if len(w) >= 4 or w.isdigit()}


def _overlap(text: str, source: set[str]) -> float:
    stems = _stems(text)
    return len(stems & source) / len(stems) if stems else 0.0


class LLMPropositionizer(PropositionExtractor):
    """Propositions written by a generator with the Dense X Retrieval prompt, one passage per prompt.

    Args:
        generator: The model; its errors (e.g. an unreachable endpoint) propagate, never hidden.
        max_new_tokens: Reply budget; a list cut off by it keeps its complete items.
        retries: Extra tries after an invalid reply, each telling the model what was wrong.
        fallback: Used when every try is invalid (default: `DeterministicExtractor`).

    ``stats`` counts ``llm_ok`` (passages the model handled), ``retried`` (extra tries), ``fell_back``
    and ``ungrounded`` (items dropped because under half their words occur in the passage or its title —
    small models copy the prompt's example).
    """

    name = "llm"

    def __init__(
        self,
        generator: Generator,
        *,
        max_new_tokens: int = 512,
        retries: int = 1,
        fallback: PropositionExtractor | None = None,
    ) -> None:
        if max_new_tokens < 16:
            raise ValueError(f"max_new_tokens must be at least 16, got {max_new_tokens}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.generator = generator
        self.max_new_tokens = max_new_tokens
        self.retries = retries
        self.fallback = fallback if fallback is not None else DeterministicExtractor()
        self.stats = {"llm_ok": 0, "retried": 0, "fell_back": 0, "ungrounded": 0}

    def prompt(self, passage: Passage, document: Document) -> list[Message]:
        """The messages sent for one passage: instructions, the example, then this passage."""
        section = f" Section: {passage.heading}." if passage.heading else ""
        content = " ".join(passage.text.split())
        text = f"{_INSTRUCTIONS}Input: Title: {document.title}.{section} Content: {content}\nOutput:"
        return [Message("user", text)]

    def extract(self, passage: Passage, document: Document) -> list[PropositionSpan]:
        if len(_WORD.findall(passage.text or "")) < 3:
            return []
        messages = self.prompt(passage, document)
        source = _stems(f"{passage.text} {document.title} {passage.heading or ''}")
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retried"] += 1
                messages = [*messages, Message("assistant", reply), Message("user", _RETRY)]
            reply = self.generator.generate(messages, max_new_tokens=self.max_new_tokens, temperature=0.0)
            texts = self._validate(parse_json_list(reply), source)
            if texts:
                self.stats["llm_ok"] += 1
                sentences = _sentences(passage.text)
                context = _stems(f"{document.title} {passage.heading or ''}")
                return [self._locate(t, passage, sentences, context) for t in texts]
        self.stats["fell_back"] += 1
        return self.fallback.extract(passage, document)

    def _validate(self, items: list | None, source: set[str]) -> list[str] | None:
        """Checked, stripped, de-duplicated items, or None when the reply is unusable."""
        if not items or len(items) > _MAX_ITEMS:
            return None
        texts = [" ".join(t.split()) for t in items]
        if any(not t or len(t) > _MAX_CHARS for t in texts):
            return None
        kept = [t for t in dict.fromkeys(texts) if _overlap(t, source) >= 0.5]
        self.stats["ungrounded"] += len(dict.fromkeys(texts)) - len(kept)
        return kept or None

    @staticmethod
    def _locate(text: str, passage: Passage, sentences: list[tuple[int, int]], context: set[str]) -> PropositionSpan:
        """The verbatim span, else the one best sentence (≥ 60 % of the words), else the whole passage."""
        core = text.rstrip(". ")
        i = passage.text.find(core) if len(core) >= 10 else -1
        if i >= 0:
            return PropositionSpan(text, passage.start + i, passage.start + i + len(core))
        # Decontextualising adds the title, so a sentence is scored with the title's words added to it.
        scored = sorted((_overlap(text, _stems(passage.text[s:e]) | context), s, e) for s, e in sentences)
        if scored and scored[-1][0] >= 0.6 and (len(scored) == 1 or scored[-2][0] < scored[-1][0]):
            return PropositionSpan(text, passage.start + scored[-1][1], passage.start + scored[-1][2])
        return PropositionSpan(text, passage.start, passage.end)


_CHOICES = ("rules", "llm", "off")


def create_extractor(name: str, generator_factory: Callable[[], Generator] | None = None) -> PropositionExtractor:
    """Builds the extractor called ``name`` (``rules``, ``llm`` or ``off``).

    Args:
        name: The extractor's name (settings ``ingestion.propositions``).
        generator_factory: Makes the generator; called only for ``llm``, which needs it.

    Raises:
        ValueError: For an unknown name, or ``llm`` without a generator factory.
    """
    key = (name or "").strip().lower()
    if key == "rules":
        return DeterministicExtractor()
    if key == "off":
        return NoExtractor()
    if key == "llm":
        if generator_factory is None:
            raise ValueError("propositions='llm' needs a generator: pass generator_factory, or use 'rules'")
        return LLMPropositionizer(generator_factory())
    raise ValueError(f"unknown proposition extractor {name!r}; choose one of {', '.join(_CHOICES)}")


def build_extractor(settings: Settings) -> PropositionExtractor | None:
    """The extractor ``settings.ingestion.propositions`` names; None for ``off`` (index passages only).

    ``llm`` uses the configured generator (``settings.models.generator``), built lazily by the registry.
    """
    from assistant.models.registry import create_generator  # the registry imports every backend

    extractor = create_extractor(settings.ingestion.propositions, lambda: create_generator(settings))
    return None if isinstance(extractor, NoExtractor) else extractor
