"""The support study's labelled claims, built from the dev data (no model)."""

from __future__ import annotations

from eval.support_study import grid, rgb_claims, squad_claims
from tests.conftest import dev_data


def test_squad_and_rgb_claims_are_labelled_pairs() -> None:
    claims = squad_claims(dev_data("squad/dev-v2.0.rebuilt.json"), 20, seed=1) + rgb_claims(dev_data("rgb/en_fact.json"))
    kinds = {c["kind"] for c in claims}
    assert kinds == {"squad.answer", "squad.swapped_answer", "squad.copied", "squad.swapped", "rgb.true", "rgb.falsified", "rgb.fake"}
    for claim in claims:
        assert claim["label"] == (claim["kind"] in ("squad.answer", "squad.copied", "rgb.true")) and claim["hits"]
    swapped = [c for c in claims if c["kind"] == "squad.swapped_answer"]
    assert all(c["claim"].lower() not in c["hits"][0].text.lower() for c in swapped)


def test_the_default_setting_separates_copied_from_swapped() -> None:
    claims = squad_claims(dev_data("squad/dev-v2.0.rebuilt.json"), 30, seed=1)
    row = next(r for r in grid(claims) if r["coverage"] == 1.0 and r["window"] == 3)
    assert row["passed"]["squad.copied"] == 1.0 and row["passed"]["squad.swapped"] <= 0.05


def test_model_verifier_scores_yes_and_no_replies() -> None:
    from assistant.models.fake import FakeGenerator
    from eval.support_study import model_verifier

    claims = squad_claims(dev_data("squad/dev-v2.0.rebuilt.json"), 10, seed=1)
    generator = FakeGenerator(default="Yes.")  # says yes to everything
    result = model_verifier(claims, generator, 8, seed=0)
    assert result["n"] == 8 and result["recall"] == 1.0 and result["precision"] == 0.5 and result["accuracy"] == 0.5
    assert result["unparsed"] == 0 and len(generator.calls) == 8
