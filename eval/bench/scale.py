"""Hybrid retrieval at scale: query latency and memory at 10k, 100k and 1M units, per store backend.

Synthetic units stand in for a corpus (a real one of a million passages would take days to embed here):
unit-length 384-d vectors drawn around 1,000 random topic centres, and texts of 40 pseudo-words drawn from
a Zipf distribution over a 50,000-word vocabulary, so BM25 sees realistic term statistics. Queries are a
stored unit's vector plus noise and four of its words, so every query has a true nearest neighbour.

Each (backend, size) runs in its own subprocess with a fresh folder, so peak memory is its own:
- ``edge``: Tessera's default, embedded Qdrant Edge, measured before and after `Store.optimize()` (HNSW);
- ``client``: qdrant-client's local mode (`QdrantClient(path=...)`), the only qdrant-client deployment
  this machine can run without a Qdrant server; a server or cluster is reached through the same `ClientStore`.

Run: ``python -m eval.bench.scale --sizes 10000 100000 1000000`` (1M takes about half an hour here).
``--words 180`` sizes each unit like a real passage (about 220 tokens, with the payload fields ingestion
writes), for the memory and disk per unit that a user's real index needs (README, "Scaling out").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM, TOPICS, VOCAB, WORDS = 384, 1000, 50_000, 40
WRITE_BATCH = 2048


def synthetic_units(n: int, seed: int = 0, batch: int = WRITE_BATCH, words_per_unit: int = WORDS) -> Any:
    """Yields ``(ids, vectors, texts)`` batches of ``n`` synthetic units in all (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((TOPICS, DIM)).astype(np.float32))
    for start in range(0, n, batch):
        size = min(batch, n - start)
        topic = rng.integers(0, TOPICS, size)
        vectors = _unit(centres[topic] + 0.35 * rng.standard_normal((size, DIM)).astype(np.float32))
        words = np.minimum(rng.zipf(1.2, (size, words_per_unit)), VOCAB)
        texts = [" ".join(f"w{w}" for w in row) for row in words]
        yield [f"u{start + i}" for i in range(size)], vectors, texts


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _open(backend: str, folder: Path) -> Any:
    from retrievers.client_store import ClientStore
    from retrievers.store import EdgeStore

    if backend == "edge":
        return EdgeStore(folder / "shard", "bench")
    from qdrant_client import QdrantClient

    return ClientStore(QdrantClient(path=str(folder / "client")), "bench")


def _latencies(store: Any, queries: list[tuple[np.ndarray, str]], mode: str) -> dict[str, float]:
    times = []
    for vector, text in queries:
        began = time.perf_counter()
        store.search(vector, text, mode=mode, limit=10, candidates=50)
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


def measure(backend: str, n: int, queries: int, words: int = WORDS) -> dict[str, Any]:
    """Loads ``n`` synthetic units into a fresh store; returns write rate, latencies and memory."""
    from retrievers.store import READY, StorePoint

    rng = np.random.default_rng(1)
    picked = set(rng.choice(n, size=min(queries, n), replace=False).tolist())
    wanted: list[tuple[np.ndarray, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = _open(backend, folder)
        store.ensure(DIM)
        began = time.perf_counter()
        for ids, vectors, texts in synthetic_units(n, words_per_unit=words):
            points = []
            for uid, vector, text in zip(ids, vectors, texts):
                payload = {"unit_id": uid, "doc_id": uid, "unit": "passage", "state": READY, "text": text}
                if words != WORDS:  # the other fields ingestion writes for a passage of a file
                    payload |= {
                        "passage_id": uid, "source": f"/home/user/documents/reports/{uid}.pdf", "title": f"Report {uid}",
                        "heading": "Results › Regional figures", "page": 3, "start": 1200, "end": 2400,
                        "embedder": "multilingual-e5-small-q4", "file_name": f"{uid}.pdf",
                    }
                points.append(StorePoint(uid, vector, text, payload))
                if int(uid[1:]) in picked:
                    noisy = _unit((vector + 0.1 * rng.standard_normal(DIM).astype(np.float32))[None])[0]
                    wanted.append((noisy, " ".join(rng.choice(text.split(), 4))))
            store.upsert(points)
        row: dict[str, Any] = {"backend": backend, "units": n, "words": words, "write_units_s": n / (time.perf_counter() - began)}
        row["plain"] = {m: _latencies(store, wanted, m) for m in ("hybrid", "dense")}
        if backend == "edge":
            began = time.perf_counter()
            store.optimize()
            row["optimize_s"] = time.perf_counter() - began
            row["indexed"] = {m: _latencies(store, wanted, m) for m in ("hybrid", "dense")}
        row["rss_mb"] = _rss_mb()
        row["disk_mb"] = _folder_mb(folder)
        store.close()
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def _fmt(lat: dict[str, dict[str, float]] | None, mode: str) -> str:
    if not lat:
        return "–"
    return f"{lat[mode]['p50_ms']:.1f} / {lat[mode]['p95_ms']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--backends", nargs="+", default=["edge", "client"], choices=["edge", "client"])
    parser.add_argument("--client-max", type=int, default=100_000,
                        help="largest size for qdrant-client's local mode (a brute-force Python store)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--client-queries", type=int, default=30,
                        help="queries against qdrant-client's local mode (each takes up to seconds at 100k)")
    parser.add_argument("--words", type=int, default=WORDS, help="words per unit (180: sized like a real passage)")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: BACKEND SIZE, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.queries, args.words)))
        return
    rows = []
    for n in args.sizes:
        for backend in args.backends:
            if backend == "client" and n > args.client_max:
                continue
            queries = args.client_queries if backend == "client" else args.queries
            cmd = [sys.executable, "-m", "eval.bench.scale", "--queries", str(queries), "--words", str(args.words), "--one", backend, str(n)]
            began = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            if done.returncode != 0:
                print(f"{backend} {n}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{backend} {n}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    print("| backend | units | write (units/s) | hybrid p50 / p95 ms, no index | dense p50 / p95 ms, no index "
          "| HNSW build (s) | hybrid p50 / p95 ms, HNSW | dense p50 / p95 ms, HNSW | RSS (MB) | peak RSS (MB) | disk (MB) "
          "| RSS per 1M units (GB) | disk per 1M units (GB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        build = f"{r['optimize_s']:.1f}" if "optimize_s" in r else "–"
        print(
            f"| {r['backend']} | {r['units']:,} | {r['write_units_s']:.0f} | {_fmt(r['plain'], 'hybrid')} | "
            f"{_fmt(r['plain'], 'dense')} | {build} | {_fmt(r.get('indexed'), 'hybrid')} | "
            f"{_fmt(r.get('indexed'), 'dense')} | {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['disk_mb']:.0f} | "
            f"{r['rss_mb'] / r['units'] * 1e6 / 1024:.1f} | {r['disk_mb'] / r['units'] * 1e6 / 1024:.1f} |"
        )
    print(f"\n{args.words} words per unit")


if __name__ == "__main__":
    main()
