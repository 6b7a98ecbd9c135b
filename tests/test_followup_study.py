"""The follow-up study's questions, built from HotpotQA (no model)."""

from __future__ import annotations

import re

from eval.followup_study import build
from retrievers.rewrite import stands_alone
from tests.conftest import dev_data


def test_follow_ups_replace_the_named_article_and_topic_changes_stand_alone() -> None:
    follow_ups, changes, corpus = build(dev_data("hotpotqa-musique/hotpotqa_train.json"), 10, 5, seed=0)
    assert len(follow_ups) == 10 and len(changes) == 5
    for item in follow_ups:
        title = item["history"][0][0].removeprefix("Tell me about ").removesuffix(".")
        assert re.search(rf"\b{re.escape(title)}\b", item["original"], re.IGNORECASE)
        assert not re.search(rf"\b{re.escape(title)}\b", item["question"], re.IGNORECASE) and " it" in f" {item['question']}"
        assert title in item["evidence"] and all(e in corpus for e in item["evidence"])
        assert not stands_alone(item["question"])  # "it" refers back: these are rewritten
    assert all(c["history"] and all(e in corpus for e in c["evidence"]) for c in changes)
