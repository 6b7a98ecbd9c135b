"""The vector store on both backends: embedded Qdrant Edge and qdrant-client (in-memory), same tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from assistant.config import Settings
from retrievers.fusion import dbsf, rrf_confidence
from retrievers.sparse import Bm25Encoder
from retrievers.points import DateRange
from retrievers.client_store import ClientStore
from retrievers.store import (
    EdgeStore,
    Leg,
    Store,
    StoreError,
    StoreHit,
    StorePoint,
    open_store,
    point_id,
)

REPO = Path(__file__).resolve().parents[1]
DIM = 4
# (unit id, doc id, text, dense direction): distinct cosines and BM25 scores for every query below, so no
# rank ties (the engines break exact ties differently).
CORPUS = [
    ("d1:0", "d1", "The quagga is an extinct subspecies of the plains zebra.", [1.0, 0.2, 0.05, 0.0]),
    ("d1:1", "d1", "Zebras live in herds on the savanna and migrate with the rains.", [0.8, 0.6, 0.0, 0.1]),
    ("d2:0", "d2", "Python is a programming language with a large standard library.", [0.05, 1.0, 0.3, 0.0]),
    ("d2:1", "d2", "Snakes such as the python are reptiles that swallow prey whole.", [0.1, 0.3, 1.0, 0.2]),
    ("d3:0", "d3", "Horses, donkeys and zebras are related animals of the equid family.", [0.5, 0.0, 0.15, 1.0]),
    ("d3:1", "d3", "The library opens at nine; the reading room closes at six.", [0.0, 0.7, 0.1, 0.9]),
]


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def points() -> list[StorePoint]:
    return [
        StorePoint(uid, unit(vec), text, {"doc_id": doc, "unit_id": uid, "text": text, "state": "ready", "unit": "passage"})
        for uid, doc, text, vec in CORPUS
    ]


def make_store(kind: str, tmp_path: Path) -> Store:
    if kind == "edge":
        return EdgeStore(tmp_path / "shard", "test")
    return ClientStore(QdrantClient(":memory:"), "test")


@pytest.fixture(params=["edge", "client"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with make_store(request.param, tmp_path) as s:
        s.ensure(DIM)
        s.upsert(points())
        yield s


def ids(hits: list[StoreHit]) -> list[str]:
    return [h.unit_id for h in hits]


def test_ensure_upsert_count(store: Store) -> None:
    assert store.count() == len(CORPUS)
    store.upsert(points()[:2])  # same unit ids replace, not add
    store.ensure(DIM)  # idempotent
    store.optimize()  # builds HNSW on Edge, a no-op on a server
    assert store.count() == len(CORPUS)


def test_dense_search_nearest_first_with_true_cosine(store: Store) -> None:
    query = unit([0.9, 0.1, 0.0, 0.3])
    hits = store.search(query, "", mode="dense", limit=len(CORPUS), candidates=len(CORPUS))
    truth = {uid: float(unit(vec) @ query) for uid, _, _, vec in CORPUS}
    assert ids(hits) == sorted(truth, key=truth.get, reverse=True)
    for h in hits:
        assert h.dense_score == pytest.approx(truth[h.unit_id], abs=1e-5)
        assert h.score == pytest.approx(h.dense_score, abs=1e-5)
        assert h.payload["unit_id"] == h.unit_id and "doc_id" in h.payload


def test_sparse_search_finds_an_exact_rare_word(store: Store) -> None:
    hits = store.search(unit([0, 0, 0, 1]), "Quaggas?", mode="sparse", limit=5, candidates=5)
    assert ids(hits) == ["d1:0"]  # stemmed and lowercased like the document; no other unit has it
    assert hits[0].score > 0
    assert hits[0].dense_score == pytest.approx(float(unit(CORPUS[0][3]) @ unit([0, 0, 0, 1])), abs=1e-5)
    assert store.search(None, "the and of", mode="sparse", limit=5, candidates=5) == []  # stopwords only


def test_sparse_scores_rank_by_idf(store: Store) -> None:
    hits = store.search(None, "zebra library", mode="sparse", limit=10, candidates=10)
    assert set(ids(hits)) == {"d1:0", "d1:1", "d3:0", "d2:0", "d3:1"}
    assert all(h.dense_score is None for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("rrf_k", [60, 1])
def test_hybrid_is_rrf_of_the_two_legs(store: Store, rrf_k: int) -> None:
    query, text, candidates = unit([0.2, 0.9, 0.4, 0.0]), "zebra herds library", 3
    dense = ids(store.search(query, text, mode="dense", limit=candidates, candidates=candidates))
    sparse = ids(store.search(query, text, mode="sparse", limit=candidates, candidates=candidates))
    expected: dict[str, float] = {}
    for ranking in (dense, sparse):
        for rank, uid in enumerate(ranking):  # Qdrant counts ranks from 0: 1 / (k + 0) for the first
            expected[uid] = expected.get(uid, 0.0) + 1.0 / (rrf_k + rank)
    hits = store.search(query, text, mode="hybrid", limit=10, candidates=candidates, rrf_k=rrf_k)
    assert set(ids(hits)) == set(dense) | set(sparse)  # the union of the legs' top candidates, no more
    assert {h.unit_id: h.score for h in hits} == pytest.approx(expected, rel=1e-5)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)  # ranked by the fused score (ties may go either way)
    vectors = {uid: unit(vec) for uid, _, _, vec in CORPUS}
    for h in hits:
        assert h.dense_score == pytest.approx(float(vectors[h.unit_id] @ query), abs=1e-5)


def rrf(rankings: list[list[str]], weights: list[float], k: int) -> dict[str, float]:
    """Weighted reciprocal rank fusion by hand, as Qdrant defines it (same on Edge and server).

    A weight divides the leg's 1-based rank: a point at 0-based ``rank`` scores ``1 / (k + (rank + 1) / w - 1)``,
    which is the classic ``1 / (k + rank)`` at ``w = 1``.
    """
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, uid in enumerate(ranking):
            fused[uid] = fused.get(uid, 0.0) + 1.0 / (k + (rank + 1) / weight - 1)
    return fused


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0, 1.0], [2.0, 1.0, 0.5, 1.0]])
def test_many_legs_fuse_by_weighted_rrf(store: Store, weights: list[float]) -> None:
    """Four legs (two query variants x dense/BM25), as query expansion and rewriting produce."""
    bm25 = Bm25Encoder()
    legs = [
        Leg("q0.dense", "dense", unit([0.2, 0.9, 0.4, 0.0]), weights[0]),
        Leg("q0.bm25", "sparse", bm25.encode_query("zebra herds library"), weights[1]),
        Leg("q1.dense", "dense", unit([0.9, 0.1, 0.0, 0.3]), weights[2]),
        Leg("q1.bm25", "sparse", bm25.encode_query("python snakes"), weights[3]),
    ]
    candidates = 3
    rankings = [ids(store.query([leg], limit=candidates, candidates=candidates)) for leg in legs]
    expected = rrf(rankings, weights, 10)
    hits = store.query(legs, limit=10, candidates=candidates, rrf_k=10)
    assert {h.unit_id: h.score for h in hits} == pytest.approx(expected, rel=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("fusion", ["dbsf", "rrf-confidence"])
def test_score_fusion_runs_each_leg_and_fuses_here(store: Store, fusion: str) -> None:
    query, text, candidates = unit([0.2, 0.9, 0.4, 0.0]), "zebra herds library", 3
    legs = [Leg("dense", "dense", query), Leg("bm25", "sparse", store.encode_query(text))]
    scored = [[(h.unit_id, h.score) for h in store.query([leg], limit=candidates, candidates=candidates)] for leg in legs]
    expected = dbsf(scored, [1.0, 1.0]) if fusion == "dbsf" else rrf_confidence(scored, [1.0, 1.0], 60)[0]
    info: dict = {}
    hits = store.query(legs, limit=10, candidates=candidates, fusion=fusion, reference=query, info=info)  # type: ignore[arg-type]
    assert [(h.unit_id, h.score) for h in hits] == [(key, pytest.approx(score)) for key, score in expected]
    assert all(h.dense_score is not None and h.payload["unit_id"] == h.unit_id for h in hits)
    assert ("fusion_weights" in info) == (fusion == "rrf-confidence")
    assert len(store.query(legs, limit=2, candidates=candidates, fusion=fusion)) == 2  # type: ignore[arg-type]


def test_weighted_rrf_on_fixed_rankings_by_hand() -> None:
    # k = 10, dense weight 2: dense ranks 0, 1, 2 score 1/9.5, 1/10, 1/10.5; BM25 ranks score 1/10, 1/11, 1/12.
    fused = rrf([["a", "b", "c"], ["b", "a", "d"]], [2.0, 1.0], 10)
    assert fused == pytest.approx({"a": 1 / 9.5 + 1 / 11, "b": 1 / 10 + 1 / 10, "c": 1 / 10.5, "d": 1 / 12})


def test_delete_doc_removes_only_that_doc(store: Store) -> None:
    store.delete_doc("d1")
    assert store.count() == len(CORPUS) - 2
    hits = store.search(unit([1, 0, 0, 0]), "zebra quagga", mode="hybrid", limit=10, candidates=10)
    assert {h.payload["doc_id"] for h in hits} == {"d2", "d3"}
    store.delete_doc("no-such-doc")
    assert store.count() == len(CORPUS) - 2


def test_dimension_mismatch_raises(store: Store) -> None:
    with pytest.raises(StoreError, match=r"holds 4-dimensional vectors but 8-dimensional .*new collection name"):
        store.ensure(8)


def test_server_collection_without_our_layout_is_refused() -> None:
    from qdrant_client import models

    client = QdrantClient(":memory:")
    client.create_collection("test", vectors_config={"dense": models.VectorParams(size=DIM, distance="Cosine")})
    with ClientStore(client, "test") as s, pytest.raises(StoreError, match="holds no 'dense' and 'bm25' vectors"):
        s.ensure(DIM)


@pytest.mark.parametrize("kind", ["edge", "client"])
def test_missing_collection_reads_empty_and_refuses_writes(kind: str, tmp_path: Path) -> None:
    with make_store(kind, tmp_path) as s:
        assert s.count() == 0
        assert s.search(unit([1, 0, 0, 0]), "zebra", mode="hybrid", limit=3, candidates=3) == []
        s.delete_doc("d1")
        with pytest.raises(StoreError, match="ensure"):
            s.upsert(points())
        with pytest.raises(ValueError, match="unit_id"):
            s.upsert([StorePoint("x:0", unit([1, 0, 0, 0]), "x", {"doc_id": "x"})])


def test_backends_agree_on_rankings_and_scores(tmp_path: Path) -> None:
    query, text = unit([0.3, 0.5, 0.2, 0.6]), "zebra python library reptiles"
    with make_store("edge", tmp_path) as edge, make_store("client", tmp_path) as client:
        for s in (edge, client):
            s.ensure(DIM)
            s.upsert(points())
        for mode in ("dense", "sparse", "hybrid"):
            a = edge.search(query, text, mode=mode, limit=6, candidates=4)
            b = client.search(query, text, mode=mode, limit=6, candidates=4)
            assert ids(a) == ids(b), mode
            assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-5), mode


def test_point_ids_are_deterministic_uuids() -> None:
    assert point_id("3f2a:12") == point_id("3f2a:12") != point_id("3f2a:13")
    assert len(point_id("3f2a:12")) == 36


def test_bm25_documents_and_queries_are_weighted_differently() -> None:
    bm25 = Bm25Encoder()
    doc = bm25.encode_documents(["zebra zebra zebra savanna"])[0]
    query = bm25.encode_query("zebra savanna")
    assert sorted(doc.indices) == sorted(query.indices)
    assert set(query.values) == {1.0}
    weight = dict(zip(doc.indices, doc.values))
    assert weight[query.indices[0]] != weight[query.indices[1]]  # term frequency counts in documents


def test_edge_reopen_keeps_points(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "shard", "test") as s:
        s.ensure(DIM)
        s.upsert(points())
    with EdgeStore(tmp_path / "shard", "test") as s:
        assert s.count() == len(CORPUS)  # lazy open, no ensure needed to read
        assert ids(s.search(unit([1, 0.2, 0.05, 0]), "quagga", mode="hybrid", limit=1, candidates=3)) == ["d1:0"]
        with pytest.raises(StoreError, match="holds 4-dimensional"):
            s.ensure(8)


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=60)


def test_edge_writes_survive_a_process_that_never_closes(tmp_path: Path) -> None:
    shard = tmp_path / "shard"
    child = _run(
        """
        import os, sys
        import numpy as np
        from retrievers.store import EdgeStore, StorePoint
        s = EdgeStore(sys.argv[1], "test")
        s.ensure(4)
        for start in range(0, 300, 50):
            s.upsert([StorePoint(f"d{i}:0", np.eye(4, dtype=np.float32)[i % 4], f"word{i} text",
                                 {"doc_id": f"d{i}", "unit_id": f"d{i}:0", "state": "ready"}) for i in range(start, start + 50)])
        os._exit(0)  # no close(), no flush(): only the write-ahead log has the points
        """,
        str(shard),
    )
    assert child.returncode == 0, child.stderr
    with EdgeStore(shard, "test") as s:
        assert s.count() == 300
        assert ids(s.search(None, "word123", mode="sparse", limit=1, candidates=1)) == ["d123:0"]


def test_second_edge_store_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    shard = tmp_path / "shard"
    with EdgeStore(shard, "test") as first:
        first.ensure(DIM)
        with pytest.raises(StoreError, match=rf"another Tessera process \(pid {os.getpid()}\) is using .*shard"):
            EdgeStore(shard, "test").count()
        child = _run(
            """
            import sys
            from retrievers.store import EdgeStore, StoreError
            try:
                EdgeStore(sys.argv[1], "test").count()
            except StoreError as e:
                print(e)
            """,
            str(shard),
        )
        assert child.returncode == 0, child.stderr
        assert f"another Tessera process (pid {os.getpid()}) is using {shard}" in child.stdout
        assert "use a different --home" in child.stdout
        assert first.count() == 0  # the holder is unaffected
    with EdgeStore(shard, "test") as again:  # released on close
        assert again.count() == 0


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = open_store(Settings(home=tmp_path))
    assert isinstance(edge, EdgeStore) and edge.path == tmp_path / "qdrant" / "tessera"
    made: dict[str, object] = {}
    # A stand-in client: a real one would start checking the (absent) server's version in a thread.
    monkeypatch.setattr("qdrant_client.QdrantClient", lambda **kw: made.update(kw) or QdrantClient(":memory:"))
    store = {"qdrant_url": "http://qdrant:6333", "qdrant_api_key": "secret", "collection": "c"}
    with open_store(Settings(home=tmp_path, store=store)) as remote:
        assert isinstance(remote, ClientStore) and remote.collection == "c"
    assert made == {"url": "http://qdrant:6333", "api_key": "secret"}


@pytest.mark.parametrize("kind", ["edge", "client"])
def test_unpublished_points_are_invisible_until_published(kind: str, tmp_path: Path) -> None:
    with make_store(kind, tmp_path) as s:
        s.ensure(DIM)
        draft = {"doc_id": "new", "unit_id": "new:0", "text": "zebra crossing", "state": "pending", "unit": "passage"}
        s.upsert([StorePoint("new:0", unit([1, 0, 0, 0]), "zebra crossing", draft)])
        query = dict(mode="hybrid", limit=5, candidates=5)
        assert s.search(unit([1, 0, 0, 0]), "zebra", **query) == []
        assert s.count() == 1  # written, just not searchable
        s.publish(["new"])
        assert ids(s.search(unit([1, 0, 0, 0]), "zebra", **query)) == ["new:0"]


@pytest.mark.parametrize("kind", ["edge", "client"])
def test_unit_filter(kind: str, tmp_path: Path) -> None:
    with make_store(kind, tmp_path) as s:
        s.ensure(DIM)
        rows = [("d:0", "passage", "zebras live in Africa"), ("d:0:p0", "proposition", "zebras live in Africa")]
        s.upsert([StorePoint(uid, unit([1, 0, 0, 0]), text, {"doc_id": "d", "unit_id": uid, "text": text,
                                                                "state": "ready", "unit": u}) for uid, u, text in rows])
        for mode in ("hybrid", "dense", "sparse"):
            found = s.search(unit([1, 0, 0, 0]), "zebras", mode=mode, limit=5, candidates=5, unit="proposition")
            assert ids(found) == ["d:0:p0"], mode
        assert len(s.search(unit([1, 0, 0, 0]), "zebras", mode="hybrid", limit=5, candidates=5)) == 2


def test_shard_lock_is_exclusive_names_its_owner_and_is_released(tmp_path: Path) -> None:
    import os

    from retrievers.shard_lock import ShardBusy, ShardLock

    first, second = ShardLock(tmp_path / "shard"), ShardLock(tmp_path / "shard")
    first.acquire()
    first.acquire()  # already held: a no-op
    assert first.held and first.owner() == str(os.getpid())
    with pytest.raises(ShardBusy):
        second.acquire()
    first.release()
    assert first.owner() == ""
    second.acquire()
    assert second.held
    second.release()
    second.release()  # safe twice


def test_close_releases_the_home_lock_even_when_the_shard_folder_is_gone(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "shard", "test")
    store.ensure(DIM)
    import shutil

    shutil.rmtree(tmp_path / "shard")  # removed by hand, or by a cleanup, while the store was open
    try:
        store.close()
    except Exception:  # noqa: BLE001 - the engine may complain about its files; the lock must still go
        pass
    assert not store._home_lock.held
    with EdgeStore(tmp_path / "shard", "test") as again:  # the next owner gets the shard
        again.ensure(DIM)


def test_shard_lock_waits_for_a_holder_that_has_not_named_itself(tmp_path: Path) -> None:
    """A holder between its flock and its pid write, or letting go, never yields a nameless busy error."""
    import fcntl
    import threading

    from retrievers.shard_lock import ShardBusy, ShardLock

    def hold_unnamed(write_pid: bool) -> threading.Timer:
        lock = ShardLock(tmp_path / "shard")
        fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, but the file is still empty

        def later() -> None:
            if write_pid:
                os.write(fd, b"4242")
            else:
                os.close(fd)

        timer = threading.Timer(0.2, later)
        timer.start()
        return timer

    hold_unnamed(write_pid=True)  # a starting holder: the error names it
    with pytest.raises(ShardBusy):
        ShardLock(tmp_path / "shard").acquire()
    assert ShardLock(tmp_path / "shard").owner() == "4242"

    (tmp_path / "shard.lock").unlink()
    hold_unnamed(write_pid=False).join()  # a leaving holder: the lock is taken once it is gone
    waiter = ShardLock(tmp_path / "shard")
    hold_unnamed(write_pid=False)
    waiter.acquire()
    assert waiter.held and waiter.owner() == str(os.getpid())
    waiter.release()


def dated(store: Store) -> None:
    """The corpus again with a site and a publication date per document."""
    about = {"d1": ("Meridian Post", "2023-10-05T00:00:00Z"), "d2": ("Summit Wire", "2023-11-20T00:00:00Z"), "d3": ("Meridian Post", "2024-01-02T00:00:00Z")}
    store.upsert([
        StorePoint(p.id, p.dense, p.text, {**p.payload, "site": about[p.payload["doc_id"]][0], "date": about[p.payload["doc_id"]][1]})
        for p in points()
    ])


def test_values_are_the_fields_distinct_ready_values(store: Store) -> None:
    assert store.values("site") == []
    dated(store)
    assert store.values("site") == ["Meridian Post", "Summit Wire"]  # most frequent first
    assert store.values("author") == []


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_a_leg_may_be_restricted_to_a_source_or_a_period(store: Store, fusion: str) -> None:
    dated(store)
    vector = unit([0.1, 0.3, 1.0, 0.2])
    wire = Leg("wire", "dense", vector, where=(("site", "Summit Wire"),))
    assert {h.payload["doc_id"] for h in store.query([wire], limit=10, candidates=10)} == {"d2"}
    either = Leg("either", "dense", vector, where=(("doc_id", ("d1", "d3")),))  # any of these values
    assert {h.payload["doc_id"] for h in store.query([either], limit=10, candidates=10)} == {"d1", "d3"}
    october = Leg("oct", "dense", vector, where=(("date", DateRange("2023-10-01T00:00:00Z", "2023-11-01T00:00:00Z")),))
    assert {h.payload["doc_id"] for h in store.query([october], limit=10, candidates=10)} == {"d1"}
    # Beside an unrestricted leg, a restricted one boosts its documents and drops nothing.
    plain = Leg("all", "dense", vector)
    alone = store.query([plain], limit=10, candidates=10)
    both = store.query([plain, october], limit=10, candidates=10, fusion=fusion)  # type: ignore[arg-type]
    assert {h.unit_id for h in both} == {h.unit_id for h in alone}
    assert alone[0].payload["doc_id"] == "d2" and both[0].payload["doc_id"] == "d1"


def test_an_older_shard_gains_the_newer_payload_indexes(tmp_path: Path) -> None:
    import qdrant_edge as qe

    with EdgeStore(tmp_path / "shard", "test") as old:
        old.ensure(DIM)
        old._shard.update(qe.UpdateOperation.delete_field_index("site"))  # as a shard made before "site" existed
        assert "site" not in old._shard.info().payload_schema
    with EdgeStore(tmp_path / "shard", "test") as again:
        again.ensure(DIM)
        dated(again)
        assert again.values("site") == ["Meridian Post", "Summit Wire"]


def test_an_index_refuses_an_embedder_other_than_the_one_that_built_it(settings, fake_embedder) -> None:
    from dataclasses import replace as _replace

    from retrievers.store import LEGACY_EMBEDDER, StoreError, StorePoint, open_store

    vector = fake_embedder.embed(["Lake Baikal"])[0]
    point = StorePoint("d:0", vector, "Lake Baikal", {"doc_id": "d", "unit_id": "d:0", "unit": "passage"})
    with open_store(settings) as store:
        store.ensure(len(vector))
        store.bind_embedder("model-a")
        store.upsert([point])
        store.publish(["d"])
        assert store.values("embedder") == ["model-a"]
    with open_store(settings) as store:  # a later process with another model of the same dimension
        store.ensure(len(vector))
        store.bind_embedder("model-b")
        with pytest.raises(StoreError, match="built with the embedder model-a, but model-b"):
            store.search(vector, "Lake Baikal", mode="dense", limit=1, candidates=5)
        with pytest.raises(StoreError, match="model-a"):
            store.upsert([_replace(point, id="d:1", payload={**point.payload, "unit_id": "d:1"})])
        store.bind_embedder("model-a")  # the right one searches as before
        assert store.search(vector, "Lake Baikal", mode="dense", limit=1, candidates=5)
    # An index written before points recorded their embedder was built by the default of that time.
    legacy = settings.model_copy(update={"home": settings.home / "legacy"})
    with open_store(legacy) as store:
        store.ensure(len(vector))
        store.upsert([point])  # nothing bound: no embedder recorded
        store.publish(["d"])
        store.bind_embedder("multilingual-e5-small-q4")
        with pytest.raises(StoreError, match=LEGACY_EMBEDDER):
            store.search(vector, "Lake Baikal", mode="dense", limit=1, candidates=5)
