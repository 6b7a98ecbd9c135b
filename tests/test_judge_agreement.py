"""Tests for eval/judge_agreement.py: labelled items, agreement statistics by hand, the shipped records."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from assistant.models.fake import FakeEmbedder, FakeGenerator
from eval.judge_agreement import (
    SHIPPED,
    agreement,
    balanced,
    cohen_kappa,
    load_agreement,
    measure,
    rgb_items,
    roc_auc,
    squad_items,
    untrusted,
    left_out,
)
from eval.ragas_metrics import JUDGED_METRICS

TRUE = "The prize went to Ann Lee in 2019. The ceremony was in Oslo."
FALSE = "The prize went to Bo Chan in 2019. The ceremony was in Oslo."


@pytest.fixture
def rgb(tmp_path: Path) -> Path:
    rows = [
        {"id": i, "query": f"Who won prize {i}?", "answer": ["Ann Lee"], "fakeanswer": "Bo Chan",
         "positive": [TRUE], "positive_wrong": [FALSE], "negative": []}
        for i in range(4)
    ]
    path = tmp_path / "en_fact.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def squad(tmp_path: Path) -> Path:
    paragraphs = [
        {"context": "Lake Vostok lies under the ice of Antarctica.", "qas": [
            {"id": "a", "question": "Where is Lake Vostok?", "answers": [{"text": "Antarctica", "answer_start": 34}]}]},
        {"context": "The lake was found by radar surveys.", "qas": [
            {"id": "b", "question": "How was it found?", "answers": [{"text": "radar surveys", "answer_start": 22}]},
            {"id": "c", "question": "Is it frozen?", "answers": [], "is_impossible": True}]},
    ]
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "Lake Vostok", "paragraphs": paragraphs}]}))
    return path


def test_cohen_kappa_by_hand() -> None:
    # observed 0.75; chance 0.5 * 0.25 + 0.5 * 0.75 = 0.5; κ = (0.75 - 0.5) / 0.5
    assert cohen_kappa([True, True, False, False], [True, False, False, False]) == pytest.approx(0.5)
    assert cohen_kappa([True, False], [True, False]) == pytest.approx(1.0)
    assert cohen_kappa([True, True], [True, True]) is None  # chance agreement is total: κ undefined
    assert cohen_kappa([], []) is None


def test_roc_auc_by_hand_counts_ties_half() -> None:
    # pairs (yes, no): 0.9>0.4, 0.9>0.1, 0.4=0.4 (half), 0.4>0.1 → 3.5 / 4
    assert roc_auc([0.9, 0.4, 0.4, 0.1], [True, True, False, False]) == pytest.approx(0.875)
    assert roc_auc([0.5], [True]) is None


def test_agreement_counts_failures_apart() -> None:
    results = [
        {"kind": "yes", "label": True, "score": 1.0, "seconds": 2.0},
        {"kind": "yes", "label": True, "score": 0.0, "seconds": 4.0},
        {"kind": "no", "label": False, "score": 0.0, "seconds": 3.0},
        {"kind": "no", "label": False, "score": None, "seconds": 1.0},  # the judge wrote invalid JSON
    ]
    summary = agreement(results)
    assert summary["n"] == 4 and summary["failed"] == 1
    assert summary["accuracy"] == pytest.approx(0.667, abs=1e-3)  # 2 of the 3 scored
    assert summary["auc"] == pytest.approx(0.75)  # (1.0 > 0.0) + half of (0.0 = 0.0)
    assert summary["mean_score_by_kind"] == {"no": 0.0, "yes": 0.5}
    assert summary["seconds_p50"] == 2.5


def test_rgb_items_pair_true_and_falsified_passages(rgb: Path) -> None:
    items = rgb_items(rgb, random.Random(0))
    faithful = [i for i in items if i.metric == "faithfulness"]
    assert {(i.kind, i.label) for i in faithful} == {("rgb.true", True), ("rgb.falsified", False), ("rgb.fake", False)}
    for item in faithful:
        if item.kind == "rgb.true":
            assert item.sample.answer == "The prize went to Ann Lee in 2019." and item.sample.contexts == [TRUE]
        if item.kind == "rgb.falsified":
            assert "Ann Lee" in item.sample.answer and item.sample.contexts == [FALSE]
    relevant = [i for i in items if i.metric == "answer_relevancy"]
    for item in relevant:
        own = item.sample.question == f"Who won prize {items.index(item) // 5}?"
        assert item.label == own


def test_squad_items_negative_paragraph_lacks_the_answer(squad: Path) -> None:
    items = squad_items(squad, 10, random.Random(0))
    assert {i.metric for i in items} == {"context_recall", "llm_context_precision_with_reference"}
    assert all(i.sample.reference == i.sample.answer for i in items)
    for item in items:
        assert (item.sample.reference.lower() in item.sample.contexts[0].lower()) == item.label
    assert all(i.sample.question != "Is it frozen?" for i in items)  # unanswerables have no reference


def test_balanced_takes_half_each(rgb: Path) -> None:
    chosen = balanced(rgb_items(rgb, random.Random(0)), "faithfulness", 4, random.Random(1))
    assert len(chosen) == 4 and sum(i.label for i in chosen) == 2


def test_measure_writes_the_summary_and_every_item(rgb: Path, squad: Path, tmp_path: Path) -> None:
    judge = FakeGenerator(default="Looks fine to me.")  # never valid JSON: every item fails, none is "no"
    summary = measure(FakeEmbedder(dimension=16), judge, "fake", 2, 0, squad, rgb, tmp_path / "out")
    assert list(summary["metrics"]) == list(JUDGED_METRICS)
    for m in summary["metrics"].values():
        assert m["n"] == 2 and m["failed"] == 2 and m["accuracy"] is None
    written = json.loads((tmp_path / "out" / "fake.json").read_text())
    assert written["metrics"] == summary["metrics"] and written["command"].startswith("python -m eval.judge_agreement")
    rows = (tmp_path / "out" / "fake.items.jsonl").read_text().splitlines()
    assert len(rows) == 8 and all(json.loads(r)["reason"] for r in rows)


def test_load_agreement_prefers_the_users_own_measurement(tmp_path: Path) -> None:
    assert load_agreement("no-such-judge", tmp_path) is None
    (tmp_path / "judge-agreement").mkdir()
    (tmp_path / "judge-agreement" / "mine.json").write_text(json.dumps({"judge": "mine", "metrics": {}}))
    assert load_agreement("mine", tmp_path)["judge"] == "mine"


def test_shipped_records_are_complete() -> None:
    shipped = sorted(SHIPPED.glob("*.json"))
    assert "qwen2.5-coder-0.5b.json" in [p.name for p in shipped]  # measured: docs/EVALUATION.md §8
    for path in shipped:
        record = json.loads(path.read_text())
        assert record["judge"] == path.stem and record["commit"] and record["command"]
        assert set(record["metrics"]) == set(JUDGED_METRICS)
        for m in record["metrics"].values():
            assert {"accuracy", "kappa", "auc", "n", "failed"} <= set(m)


def test_a_judge_is_used_only_where_its_agreement_supports_it() -> None:
    record = {"judge": "j", "metrics": {"faithfulness": {"kappa": 0.05}, "answer_relevancy": {"kappa": 0.55},
                                        "context_recall": {"kappa": None}}}
    reasons = untrusted(record)
    assert set(reasons) == {"faithfulness", "context_recall", "llm_context_precision_with_reference"}
    assert "0.05" in reasons["faithfulness"] and "not measured" in reasons["llm_context_precision_with_reference"]
    assert untrusted(None) == {}  # never measured: scored, and the report says so
    assert left_out(None, record) == reasons
    assert left_out(["faithfulness"], record) == {m: "not in eval.judge_metrics" for m in JUDGED_METRICS if m != "faithfulness"}
