"""eval/generator_choice.py: the samples each set draws, scoring, resuming, and the summary (fake models)."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.models.fake import FakeGenerator
from assistant.compression import ContextCompressor
from assistant.models.fake import FakeEmbedder
from eval.generator_choice import (
    PASSAGES,
    hotpot_items,
    paired_comparison,
    rgb_items,
    run_set,
    squad_items,
    summarise,
    table,
)
from tests.conftest import dev_data


def test_squad_items_hold_the_gold_paragraph_among_four() -> None:
    path = dev_data("squad/dev-v2.0.rebuilt.json")
    items = squad_items(path, 5, seed=3)
    assert items == squad_items(path, 5, seed=3)  # seeded
    contexts = {p["context"] for a in json.loads(path.read_text())["data"] for p in a["paragraphs"]}
    for item in items:
        assert len(item["contexts"]) == PASSAGES and all(text in contexts for _, text in item["contexts"])
        for answer in item["answers"]:
            assert any(answer in text for _, text in item["contexts"])


def test_hotpot_items_hold_both_supporting_paragraphs() -> None:
    path = dev_data("hotpotqa-musique/hotpotqa_train.json")
    rows = {r["_id"]: r for r in json.loads(path.read_text())}
    for item in hotpot_items(path, 5, seed=0):
        gold = {t for t, _ in rows[item["id"]]["supporting_facts"]}
        assert gold <= {t for t, _ in item["contexts"]} and len(item["contexts"]) == PASSAGES


def test_rgb_items_mix_true_falsified_and_noise() -> None:
    for item in rgb_items(dev_data("rgb/en_fact.json"), 10, seed=0):
        assert item["kinds"].count("false") == 1 and 1 <= item["kinds"].count("true") <= 2
        assert len(item["contexts"]) == PASSAGES and item["fake"] and item["parts"]


def test_run_set_scores_resumes_and_summarises(tmp_path: Path) -> None:
    items = [
        {"id": "a", "question": "Where?", "answers": ["Paris"], "contexts": [("T", "Paris is in France.")]},
        {"id": "b", "question": "Who?", "answers": [], "contexts": [("T", "Nothing here.")]},
    ]
    out = tmp_path / "rows.jsonl"
    assert run_set("squad-v2", items, None, out, 16) == []  # summarise-only: nothing generated yet
    generator = FakeGenerator(["Paris [1]", "The documents don't say."])
    rows = run_set("squad-v2", items, generator, out, 16)
    assert [r["em"] for r in rows] == [1.0, 1.0] and rows[1]["abstained"] and not rows[0]["abstained"]
    assert len(generator.calls) == 2
    again = FakeGenerator(["never asked"])
    assert run_set("squad-v2", items, again, out, 16) == rows and not again.calls  # resumed from the file
    summary = summarise("squad-v2", rows)
    assert summary["em"] == 100.0 and summary["abstain_f1"] == 1.0 and summary["n"] == 2
    assert "| fake |" in table({"fake": {"squad-v2": {**summary, "rows": rows}}})


def test_rows_written_earlier_are_post_processed_again_from_their_raw_text(tmp_path: Path) -> None:
    items = [{"id": "b", "question": "Who?", "answers": [], "contexts": [("T", "Nothing here.")]}]
    out = tmp_path / "rows.jsonl"
    # A row from an older post-processing that took the bare marker "[1]" for an answer.
    out.write_text(json.dumps({"id": "b", "raw": "[1]", "text": "[1]", "prediction": "", "abstained": False}) + "\n")
    (row,) = run_set("squad-v2", items, None, out, 16)
    assert row["abstained"] and row["text"] == "The documents don't say." and row["em"] == 1.0


def test_near_topic_items_reference_squad_paragraphs_and_expect_abstention() -> None:
    from eval.generator_choice import DEFAULT_NEAR_TOPIC, near_topic_items, score_near_topic

    items = near_topic_items(DEFAULT_NEAR_TOPIC, 40, seed=0, squad=dev_data("squad/dev-v2.0.rebuilt.json"))
    assert len(items) == 40 and len({i["id"] for i in items}) == 40
    assert all(i["answers"] == [] and len(i["contexts"]) == PASSAGES for i in items)
    assert score_near_topic(items[0], {"abstained": True, "supported": False}) == {"abstained_right": 1.0, "hallucinated": 0.0}


def test_compressed_runs_show_the_model_fewer_words_and_compare_paired_with_whole_ones(tmp_path: Path) -> None:
    filler = " ".join(f"Filler sentence number {i} says nothing." for i in range(20))
    items = [
        {"id": str(i), "question": "Where is the Louvre?", "answers": ["Paris"], "contexts": [("T", f"{filler} The Louvre is in Paris.")]}
        for i in range(4)
    ]
    whole = run_set("squad-v2", items, FakeGenerator(["Lyon [1]"] * 4), tmp_path / "whole.jsonl", 16)
    generator = FakeGenerator(["Paris [1]"] * 4)
    compressor = ContextCompressor(FakeEmbedder(256), 10)
    compressed = run_set("squad-v2", items, generator, tmp_path / "short.jsonl", 16, compressor)
    assert "The Louvre is in Paris." in generator.calls[0][-1].content and "number 7" not in generator.calls[0][-1].content
    assert compressed[0]["prompt_words"] < whole[0]["prompt_words"]
    paired = paired_comparison(compressed, whole, "squad-v2")
    assert paired["n"] == 4 and paired["baseline"] == 0.0 and paired["this"] == 100.0 and paired["delta"] == 100.0
    assert paired["p"] < 0.2  # four of four pairs improved: the smallest p four sign flips allow is 0.125
