"""Answer metrics as SQuAD defines them: normalisation, exact match and token F1."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITATION = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def strip_citations(text: str) -> str:
    """Removes ``[n]`` markers so they don't count as answer tokens."""
    return _CITATION.sub("", text).strip()


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall over normalised tokens (SQuAD's F1)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(metric, prediction: str, golds: Sequence[str]) -> float:
    """The metric against the best-matching gold answer (SQuAD scores against every reference)."""
    return max((metric(prediction, g) for g in golds), default=0.0)


# -- retrieval ------------------------------------------------------------------------------------


def contains_answer(prediction: str, parts: Sequence[Sequence[str]]) -> bool:
    """RGB's accuracy: the normalised prediction contains, for every part of the answer, one of its
    alternatives (most answers have one part; "who won X and Y" has two)."""
    text = f" {normalize_answer(prediction)} "
    return bool(parts) and all(
        any(f" {normalize_answer(a)} " in text for a in alternatives if normalize_answer(a)) for alternatives in parts
    )


_CONFLICT = re.compile(r"\b(disagree|conflict|contradict|inconsisten|differ)", re.IGNORECASE)


def mentions_conflict(text: str) -> bool:
    """Whether an answer says its sources disagree."""
    return bool(_CONFLICT.search(text))


def _unique(ids: Sequence[str]) -> list[str]:
    """Ids in first-appearance order, each once (several passages of one document count once)."""
    return list(dict.fromkeys(ids))


def recall_at_k(ranked: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """Share of the relevant ids found in the top ``k`` distinct ranked ids."""
    gold = set(relevant)
    if not gold:
        raise ValueError("recall is undefined without relevant ids")
    return len(gold & set(_unique(ranked)[:k])) / len(gold)


def mrr_at_k(ranked: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """Reciprocal rank of the first relevant id within the top ``k`` distinct ids (0 if none)."""
    gold = set(relevant)
    for rank, unit in enumerate(_unique(ranked)[:k], start=1):
        if unit in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """Binary-relevance nDCG over the top ``k`` distinct ids (BEIR's definition with gain 1)."""
    import math

    gold = set(relevant)
    dcg = sum(1.0 / math.log2(rank + 1) for rank, unit in enumerate(_unique(ranked)[:k], start=1) if unit in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def passage_recall_at_k(texts: Sequence[str], evidence_texts: Sequence[str], k: int) -> float:
    """Share of evidence spans contained (after normalisation) in one of the top ``k`` retrieved texts."""
    if not evidence_texts:
        raise ValueError("passage recall is undefined without evidence texts")
    top = [normalize_answer(t) for t in texts[:k]]
    spans = [normalize_answer(e) for e in evidence_texts]
    return sum(any(s and s in t for t in top) for s in spans) / len(spans)


# -- abstention and aggregation -------------------------------------------------------------------


def abstention_scores(abstained: Sequence[bool], answerable: Sequence[bool]) -> dict[str, float | None]:
    """Precision, recall and F1 of abstaining, where the positive class is "unanswerable".

    A score whose denominator is zero (no abstentions, no unanswerable questions) is None: undefined,
    not 0.
    """
    tp = sum(a and not ok for a, ok in zip(abstained, answerable))
    predicted, actual = sum(abstained), sum(not ok for ok in answerable)
    precision = tp / predicted if predicted else None
    recall = tp / actual if actual else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def bootstrap_ci(values: Sequence[float], *, resamples: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
