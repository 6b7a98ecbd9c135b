#!/usr/bin/env bash
# The retrieval ablation of docs/EVALUATION.md: seven configurations on three datasets, retrieval only.
# Usage: bash eval/ablation.sh [HOME] [RUNS]   (defaults: .tessera-eval, runs/ablation)
# Each row is one `tessera eval run`; LLM replies are cached in HOME (eval.llm_cache), so the rows that share
# a step (+CSQE and "all" repeat +LLM expansion's calls) share its calls and report the original latency.
set -euo pipefail
home=${1:-.tessera-eval}
runs=${2:-runs/ablation}
tessera=${TESSERA:-tessera}
declare -A rows=(
  [1-dense]="--set retrieval.mode=dense"
  [2-bm25]="--set retrieval.mode=sparse"
  [3-hybrid]=""
  [4-hyde]="--set query.hyde=true"
  [5-expansion]="--set query.expansion=few-shot"
  [6-csqe]="--set query.expansion=few-shot --set query.csqe=true"
  [7-all]="--set query.hyde=true --set query.expansion=few-shot --set query.csqe=true"
)
for data in squad2 hotpotqa musique; do
  for row in $(printf '%s\n' "${!rows[@]}" | sort); do
    # shellcheck disable=SC2086  # the row's options are words
    $tessera eval run "data/$data" --out "$runs/$data/$row" --home "$home" --retrieval-only --no-progress ${rows[$row]}
  done
  $tessera eval table "$runs/$data"/*
done
