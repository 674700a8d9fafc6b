#!/usr/bin/env bash
# Installs Debian's Chromium (for browser tests driven by playwright-core with
# executablePath /usr/bin/chromium) if it is missing. Idempotent.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "ensure-chromium: error: /usr/bin/chromium is missing; run as root to install it" >&2
  exit 1
fi
echo "chromium: installing (apt-get install chromium) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium </dev/null >/dev/null
echo "chromium: installed ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
