#!/usr/bin/env bash
# Starts Azurite (Microsoft's Azure Storage emulator, npm `azurite`) for the blob store's
# conformance suite against Azure Blob Storage:
#
#   export FLYTERS_TEST_AZURITE_ENDPOINT=$(scripts/azurite.sh | tail -n 1)
#
# Installed once with npm into FLYTERS_AZURITE_CACHE (about a minute) and reused. The account
# is Azurite's well-known devstoreaccount1; the endpoint printed is path-style
# (`http://127.0.0.1:<port>/devstoreaccount1`). Idempotent like scripts/s3.sh.
#
# Environment:
#   FLYTERS_AZURITE_DATA   data directory    (default /tmp/flyte-rs-azurite)
#   FLYTERS_AZURITE_PORT   first port tried  (default 10010)
#   FLYTERS_AZURITE_CACHE  install prefix    (default ~/.cache/flyte-rs/azurite)
#   scripts/azurite.sh stop
set -euo pipefail

VERSION=3.37.0
DATA="${FLYTERS_AZURITE_DATA:-/tmp/flyte-rs-azurite}"
PORT="${FLYTERS_AZURITE_PORT:-10010}"
CACHE="${FLYTERS_AZURITE_CACHE:-$HOME/.cache/flyte-rs/azurite}"
HOST=127.0.0.1
BIN="$CACHE/node_modules/.bin/azurite-blob"

log() { echo "azurite.sh: $*" >&2; }
# shellcheck source=lib/local-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/local-server.sh"

if [[ "${1:-}" == "stop" ]]; then
  local_server_stop
  exit 0
fi

if [[ ! -x "$BIN" ]]; then
  command -v npm >/dev/null || { log "npm is missing (Debian: apt-get install nodejs npm)"; exit 1; }
  log "installing azurite $VERSION from npm into $CACHE"
  mkdir -p "$CACHE"
  npm install --no-audit --no-fund --prefix "$CACHE" "azurite@$VERSION" >&2
fi

mkdir -p "$DATA"
local_server_reuse /devstoreaccount1 && exit 0
log "starting Azurite's blob service"
LOCAL_SERVER_SUFFIX=/devstoreaccount1 local_server_start 300 "$BIN" --blobHost "$HOST" \
  --blobPort "{PORT}" --location "$DATA/data" --silent --skipApiVersionCheck
