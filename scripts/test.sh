#!/usr/bin/env bash
# Sets up Tessera and runs the whole test suite: unit tests with fake models, integration tests with the
# real bundled models and embedded Qdrant, the browser tests and the load test (`-m ""` lifts the fast-loop
# default of pyproject.toml). Extra arguments go to pytest (e.g. -m "not integration").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh  # Debian's chromium for the web tests (they skip, saying why, when it can't be had)
.venv/bin/python -m pytest -q -m "" "$@"
