#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (playwright cannot download browsers here). Needs root
# and apt; without them it says so and the browser tests skip with that reason.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
  echo "installing chromium for the browser tests (apt-get)..."
  apt-get update -qq > /dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
else
  echo "note: /usr/bin/chromium is missing and cannot be installed here (needs root + apt-get): browser tests will skip" >&2
fi
