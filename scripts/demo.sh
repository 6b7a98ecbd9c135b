#!/usr/bin/env bash
# Sets up Tessera, indexes its own user guide (docs/guide) and answers a question about it, offline.
# The demo's state lives in .tessera-demo/ so it never mixes with your own index.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TESSERA_HOME="${TESSERA_HOME:-$PWD/.tessera-demo}"
.venv/bin/tessera ingest docs/guide
question="${1:-How does hybrid retrieval merge the two ranked lists?}"
echo
echo "Q: $question"
.venv/bin/tessera ask "$question"
