#!/usr/bin/env bash
# The whole benchmark suite behind docs/BENCHMARKS.md, one module after another (each is also runnable
# alone; see its docstring). Results go to OUT (default runs/bench), one Markdown file per benchmark.
# Takes about an hour on the 2-core machine, most of it the 1M-unit scale run; QUICK=1 skips 1M.
# Run it on an otherwise idle machine: the numbers are latencies.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/bench}
PY=${PY:-.venv/bin/python}
DEV=../shared/data/dev
mkdir -p "$OUT"
[ -d data/squad1 ] || $PY -m assistant.cli eval convert squad $DEV/squad/dev-v1.1.rebuilt.json data/squad1 --limit 100 --seed 0
[ -d data/hotpotqa ] || $PY -m assistant.cli eval convert hotpotqa $DEV/hotpotqa-musique/hotpotqa_train.json data/hotpotqa --seed 0
sizes="10000 100000 1000000"
[ "${QUICK:-0}" = 1 ] && sizes="10000 100000"
run() { local name=$1; shift; echo "== $name: $*" >&2; "$PY" -m "$@" | tee "$OUT/$name.md"; }
run floors eval.bench.floors
run embed eval.bench.embed data/hotpotqa
run ingest eval.bench.ingest data/squad1 --docs 150 --variants tessera-off tessera-rules vanilla
run latency eval.bench.latency data/hotpotqa --questions 40 --answers 10
run scale eval.bench.scale --sizes $sizes --out "$OUT/scale.json"
