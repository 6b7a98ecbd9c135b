"""The SQLite record of memory (memory/records.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.types import Exchange, MemoryUnit
from memory.records import MemoryRecords, SessionInfo


def unit(uid: str, user: str = "ana", session: str = "s1", granularity: str = "turn", at: float = 1.0) -> MemoryUnit:
    return MemoryUnit(uid, granularity, f"text of {uid}", session, (uid,), at, user)


def test_units_round_trip_with_filters_and_vectors(tmp_path: Path) -> None:
    with MemoryRecords(tmp_path / "sub" / "m.sqlite3") as records:
        a, b, c = unit("a", at=1), unit("b", granularity="fact", at=2), unit("c", session="s2", at=3)
        records.put_units([a, b, c], np.eye(3, dtype=np.float32))
        records.put_units([unit("x", user="bob")])  # no vector
        assert records.units("ana") == [a, b, c]
        assert records.units("ana", "s1") == [a, b]
        assert records.units("ana", granularity="fact") == [b]
        assert records.units("ana", ids=["c", "x"]) == [c]  # never another user's
        ids, vectors = records.vectors("ana")
        assert ids == ["a", "b", "c"] and vectors.tolist() == np.eye(3).tolist()
        assert records.vectors("bob")[0] == [] and records.vectors("ana", ["b"])[0] == ["b"]
        assert records.vectors("ana", latest=2)[0] == ["b", "c"]
        with pytest.raises(ValueError, match="2 units but 1 vectors"):
            records.put_units([a, b], np.zeros((1, 3)))


def test_exchanges_and_sessions(tmp_path: Path) -> None:
    with MemoryRecords(tmp_path / "m.sqlite3") as records:
        records.add_exchange("ana", "s1", "t1", Exchange("q1", "a1"), 10.0)
        records.add_exchange("ana", "s1", "t2", Exchange("q2", "a2"), 12.0)
        records.add_exchange("ana", "s2", "t3", Exchange("q3", "a3"), 20.0)
        records.add_exchange("bob", "s1", "t4", Exchange("q4", "a4"), 5.0)
        assert records.exchanges("ana", "s1") == [Exchange("q1", "a1"), Exchange("q2", "a2")]
        assert records.sessions("ana") == [SessionInfo("s1", 10.0, 12.0, 2), SessionInfo("s2", 20.0, 20.0, 1)]
        assert records.sessions("ana")[0][0] == "s1"  # a plain tuple too


def test_links_clusters_and_forget(tmp_path: Path) -> None:
    with MemoryRecords(tmp_path / "m.sqlite3") as records:
        records.put_units([unit("a"), unit("b"), unit("c", session="s2"), unit("d", user="bob")])
        records.add_exchange("ana", "s1", "t1", Exchange("q", "a"), 1.0)
        records.add_links([("b", "a"), ("a", "b"), ("a", "c"), ("c", "c")])
        assert records.links_of(["a", "c", "zz"]) == {"a": ["b", "c"], "c": ["a"], "zz": []}
        records.set_clusters({"a": 1, "b": 0})
        assert sorted(records.forget("ana", "s1")) == ["a", "b"]
        assert [u.id for u in records.units("ana")] == ["c"] and records.exchanges("ana", "s1") == []
        assert records.links_of(["c"]) == {"c": []}  # links of forgotten units go too
        assert records.forget("ana") == ["c"] and records.units("bob")[0].id == "d"
