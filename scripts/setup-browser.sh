#!/usr/bin/env bash
# Installs the browser the console's end-to-end tests drive (tests/e2e/test_console.py):
# Debian's Chromium, headless, through Playwright's `executable_path`. Playwright's own
# browser downloads are never used.
#
# Idempotent: installs only if /usr/bin/chromium is missing. Prints the browser's path on its
# last line (the tests read FLYTERS_CHROMIUM, default /usr/bin/chromium).
set -euo pipefail

BROWSER="${FLYTERS_CHROMIUM:-/usr/bin/chromium}"
log() { echo "setup-browser.sh: $*" >&2; }

if [[ ! -x "$BROWSER" ]]; then
  log "installing chromium from Debian packages"
  sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    chromium chromium-driver fonts-liberation >&2
fi
[[ -x "$BROWSER" ]] || { log "no $BROWSER after installing chromium"; exit 1; }
"$BROWSER" --version >&2
echo "$BROWSER"
