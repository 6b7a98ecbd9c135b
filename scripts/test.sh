#!/usr/bin/env bash
# Sets up Tessera and runs the whole test suite: unit tests with fake models, integration tests with the
# real bundled models and embedded Qdrant. Extra arguments go to pytest (e.g. -m "not integration").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
