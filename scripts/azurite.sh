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
pid_alive() { [[ -f "$DATA/server.pid" ]] && kill -0 "$(cat "$DATA/server.pid")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

if [[ "${1:-}" == "stop" ]]; then
  if pid_alive; then
    kill "$(cat "$DATA/server.pid")" || true
    log "stopped Azurite on $DATA"
  fi
  rm -f "$DATA/server.pid" "$DATA/server.port"
  exit 0
fi

if [[ ! -x "$BIN" ]]; then
  command -v npm >/dev/null || { log "npm is missing (Debian: apt-get install nodejs npm)"; exit 1; }
  log "installing azurite $VERSION from npm into $CACHE"
  mkdir -p "$CACHE"
  npm install --no-audit --no-fund --prefix "$CACHE" "azurite@$VERSION" >&2
fi

mkdir -p "$DATA"
if pid_alive && [[ -f "$DATA/server.port" ]] && port_open "$(cat "$DATA/server.port")"; then
  log "reusing Azurite on $HOST:$(cat "$DATA/server.port")"
  echo "http://$HOST:$(cat "$DATA/server.port")/devstoreaccount1"
  exit 0
fi

while port_open "$PORT"; do PORT=$((PORT + 1)); done
# From the data directory, never a working directory that may be deleted under it.
(cd "$DATA" && exec nohup "$BIN" --blobHost "$HOST" --blobPort "$PORT" --location "$DATA/data" \
  --silent --skipApiVersionCheck >"$DATA/server.log" 2>&1) &
echo $! >"$DATA/server.pid"
echo "$PORT" >"$DATA/server.port"
for _ in $(seq 1 300); do
  if port_open "$PORT"; then
    log "Azurite blob service on $HOST:$PORT (data $DATA/data, log $DATA/server.log)"
    echo "http://$HOST:$PORT/devstoreaccount1"
    exit 0
  fi
  if ! pid_alive; then break; fi
  sleep 0.1
done
log "Azurite did not start:"
cat "$DATA/server.log" >&2
exit 1
