from __future__ import annotations

from assistant.citations import cited_numbers, citations_for, strip_invalid, supporting_source
from assistant.types import Hit


def hit(text: str, n: int = 0) -> Hit:
    return Hit(f"u{n}", text, 1.0, f"/docs/{n}.md", f"u{n}", f"d{n}")


def test_cited_numbers_in_order_each_once() -> None:
    assert cited_numbers("A [2], B [1, 3] and again [2]; C [4;5].") == [2, 1, 3, 4, 5]
    assert cited_numbers("no markers, [x] or [ ] here") == []


def test_strip_invalid_drops_out_of_range_markers() -> None:
    text, dropped = strip_invalid("Paris [1] is big [7].", 2)
    assert text == "Paris [1] is big."
    assert dropped == [7]
    text, dropped = strip_invalid("X [1, 9]", 2)
    assert (text, dropped) == ("X [1]", [9])
    assert strip_invalid("X [0]", 2) == ("X", [0])


def test_supporting_source_picks_the_overlapping_passage() -> None:
    hits = [hit("The Eiffel Tower is in Paris.", 0), hit("Lake Baikal is 1,642 metres deep.", 1)]
    assert supporting_source("1,642 metres", hits) == 2
    assert supporting_source("the", hits) is None  # only stopwords
    assert supporting_source("Quantum chromodynamics", hits) is None


def test_citations_for_maps_numbers_to_hits() -> None:
    hits = [hit("a", 0), hit("b", 1)]
    cites = citations_for([2, 5, 1], hits)
    assert [(c.n, c.hit.unit_id) for c in cites] == [(2, "u1"), (1, "u0")]


def test_unsupported_claims_are_flagged() -> None:
    from assistant.citations import unsupported_claims

    hits = [hit("The Eiffel Tower is in Paris.", 0), hit("Lake Baikal is 1,642 metres deep.", 1)]
    assert unsupported_claims("Lake Baikal is 1,642 metres deep [2].", hits) == []
    assert unsupported_claims("It is in Paris [2].", hits) == ["It is in Paris [2]."]  # cites the wrong source
    assert unsupported_claims("Paris [1]. It was built by aliens.", hits) == ["It was built by aliens."]
    assert unsupported_claims("It is [2].", hits) == []  # nothing but stopwords and the marker to check
    assert unsupported_claims("Paris [7].", hits) == ["Paris [7]."]  # a marker past the sources supports nothing
    assert unsupported_claims("", hits) == []
