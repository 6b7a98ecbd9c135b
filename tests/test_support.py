"""The support check: cases a user hit (issue "Trustworthy answers"), rebuilt over passages the tests write."""

from __future__ import annotations

import pytest

from assistant.answering import finish_answer
from assistant.support import SupportChecker, content_words, names_in, numbers_in, sentences
from assistant.types import Hit, Trace

HERON = (
    "The Kelvaro Lantern Festival opens each May on the harbour. The Grey Heron lantern is the largest: it is "
    "4.5 metres long and carried by twelve people. Lanterns are lit at dusk."
)
LIGHTHOUSE = "The Ostrand lighthouse was built in 1887 by Marta Velin. Its lamp was electrified in 1931."


def hits() -> list[Hit]:
    return [
        Hit("u1", HERON, 1.0, "/docs/festival.html", "p1", "d1", "Kelvaro Lantern Festival"),
        Hit("u2", LIGHTHOUSE, 1.0, "/docs/lighthouse.md", "p2", "d2", "Ostrand lighthouse"),
    ]


def test_a_colour_the_page_never_gives_is_unsupported_though_cited() -> None:
    answer = finish_answer("The Grey Heron lantern is a red lantern. [1]", hits(), Trace(), question="What colour is the Grey Heron lantern?")
    assert answer.unsupported == ("The Grey Heron lantern is a red lantern. [1]",)


def test_an_uncited_answer_gets_no_invented_citation() -> None:
    trace = Trace()
    answer = finish_answer("1,000 euros", hits(), trace, question="How much did a ticket to the festival cost?")
    assert answer.citations == () and answer.unsupported == ("1,000 euros",) and not answer.abstained
    cite = trace.stages[-1].details
    assert cite["attributed"] is False and cite["support"][0]["missing"] == ["1000"]


def test_an_uncited_sentence_the_source_does_support_is_attributed() -> None:
    trace = Trace()
    answer = finish_answer("It was built in 1887 by Marta Velin.", hits(), trace, question="Who built the Ostrand lighthouse?")
    assert [c.n for c in answer.citations] == [2] and answer.unsupported == ()
    assert trace.stages[-1].details["attributed"] is True


def test_a_sentence_copied_from_its_source_is_supported_and_a_made_up_one_is_not() -> None:
    copied = "The Grey Heron lantern is the largest: it is 4.5 metres long and carried by twelve people."
    assert finish_answer(copied, hits(), Trace()).unsupported == ()
    # Cited, and shares "lantern" with its source — but says nothing the source says.
    made_up = "The lantern was designed by a famous Venetian glassblower [1]."
    assert finish_answer(made_up, hits(), Trace()).unsupported == (made_up,)


@pytest.mark.parametrize(
    "claim",
    [
        "The Ostrand lighthouse was built in 1889 [2].",  # a swapped year
        "The Ostrand lighthouse was built by Anna Velin [2].",  # a swapped name
    ],
)
def test_swapped_numbers_names_and_sources_are_unsupported(claim: str) -> None:
    (verdict,) = SupportChecker().check(claim, hits())
    assert not verdict.supported


def test_a_fact_cited_to_the_wrong_source_cites_the_one_that_holds_it() -> None:
    trace = Trace()
    answer = finish_answer("The Ostrand lighthouse was built in 1887 [1].", hits(), trace)
    assert answer.text == "The Ostrand lighthouse was built in 1887 [2]." and [c.n for c in answer.citations] == [2]
    assert trace.stages[-1].details["recited"] == [{"sentence": "The Ostrand lighthouse was built in 1887 [1].", "cited": [1], "found": 2}]
    (verdict,) = SupportChecker().check("It was built in 1887 by Anna Velin [1].", hits())
    assert not verdict.supported and verdict.source == 1 and verdict.missing == ("1887", "anna", "velin")  # the cited source's shortfall


def test_the_source_title_counts_and_word_forms_match() -> None:
    (titled,) = SupportChecker().check("The Kelvaro Lantern Festival opens in May [1].", hits())
    assert titled.supported
    gravity = [Hit("g", "Gravity slows bodies as they rise.", 1.0, "g.md", "g", "g")]
    (verdict,) = SupportChecker().check("A gravitational pull slows them.", gravity)
    assert verdict.coverage > 0.5


def test_the_main_claim_unsupported_abstains_when_the_setting_says_so() -> None:
    trace = Trace()
    answer = finish_answer("1,000 euros", hits(), trace, on_unsupported="abstain")
    assert answer.abstained and answer.text == "The documents don't say."
    assert trace.stages[-1].details["abstained"] == "unsupported" and trace.stages[-1].details["withheld"] == "1,000 euros"
    kept = finish_answer("It opens each May [1].", hits(), Trace(), on_unsupported="abstain")
    assert not kept.abstained and [c.n for c in kept.citations] == [1]


def test_words_the_question_already_holds_need_no_support() -> None:
    checker = SupportChecker()
    (verdict,) = checker.check("The Ostrand lighthouse's lamp was electrified in 1931 [2].", hits(), "When was the Ostrand lighthouse's lamp electrified?")
    assert verdict.supported and verdict.coverage == 1.0
    (bare,) = checker.check("Yes [2].", hits())
    assert bare.supported  # nothing to check beyond the marker


def test_helpers_normalise_as_documented() -> None:
    assert numbers_in("It is 1,642. metres, built 1869–1909 [3]") == {"1642", "1869", "1909"}
    assert names_in("In 1564 Jean Ribault landed in Florida [1].") == {"jean", "ribault", "florida"}
    assert content_words("The lanterns were lit [2]") == {"lantern", "lit"}
    assert sentences("One [1]. Two is here.\nThree") == ["One [1].", "Two is here.", "Three"]


def test_invalid_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="coverage"):
        SupportChecker(coverage=1.5)
    with pytest.raises(ValueError, match="window"):
        SupportChecker(window=0)


def test_restating_the_question_over_an_unrelated_passage_rests_on_nothing() -> None:
    passages = [Hit("i", "Tessera remembers a hash of every file. The number of passages in the document is stored.", 1.0, "i.md", "i", "i")]
    question = "How does hybrid retrieval merge the two ranked lists?"
    nonsense = "The hybrid retrieval merges the two ranked lists by the number of passages in the document."
    (verdict,) = SupportChecker().check(nonsense, passages, question)
    assert not verdict.supported  # the passage is not about the question: its words are no premises
    about = [Hit("t", "Tickets for the festival are 12 euros each.", 1.0, "t.md", "t", "t")]
    (ticket,) = SupportChecker().check("A ticket costs 12 euros.", about, "How much does a festival ticket cost?")
    assert ticket.supported  # a passage about the question: "costs" may come from the question


def test_an_answer_that_only_restates_the_question_claims_its_presupposition() -> None:
    mace = [Hit("m", "The mace is silver. Its gold was panned in Scottish rivers.", 1.0, "m.md", "m", "m")]
    question = "Was the gold in the mace panned from the River Tay?"
    (verdict,) = SupportChecker().check("The gold in the mace was panned from the River Tay. [1]", mace, question)
    assert not verdict.supported and verdict.missing == ("river", "tay")  # names are never premises
