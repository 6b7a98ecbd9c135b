from __future__ import annotations

from assistant.citations import cited_numbers, citations_for, strip_invalid
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


def test_citations_for_maps_numbers_to_hits() -> None:
    hits = [hit("a", 0), hit("b", 1)]
    cites = citations_for([2, 5, 1], hits)
    assert [(c.n, c.hit.unit_id) for c in cites] == [(2, "u1"), (1, "u0")]
