#!/usr/bin/env bash
# Starts a throw-away OpenID Connect provider for authentication tests and trials
# (docs/auth.md):
#
#   export FLYTERS_TEST_OIDC_ISSUER=$(scripts/oidc.sh | tail -n 1)
#
# The provider is panva's certified `oidc-provider` from npm (scripts/oidc/provider.mjs has
# its settings): discovery at $ISSUER/.well-known/openid-configuration, JWT access tokens
# for the Flyte API audience signed with keys published at its JWKS. It is installed once
# with `npm install` into FLYTERS_OIDC_CACHE and reused after. Idempotent: reuses a provider
# that already answers on the data directory's recorded port. Everything but the issuer URL
# goes to stderr; the issuer is the last line.
#
# Clients (test only):
#   FLYTERS_OIDC_MACHINE_CLIENT_ID / _SECRET  confidential, client credentials (default
#                                             flyte-rs-machine / flyte-rs-machine-secret)
#   FLYTERS_OIDC_PUBLIC_CLIENT_ID             public, authorization code with PKCE (default
#                                             flytectl, redirect http://localhost:53593/callback)
#   FLYTERS_OIDC_CONSOLE_CLIENT_ID / _SECRET  confidential, the console's login (default
#                                             flyte-console / flyte-console-secret, redirect
#                                             http://127.0.0.1:<any port>/callback)
#   FLYTERS_OIDC_CONSOLE_TOKEN_TTL            lifetime of the console's access tokens, s
#                                             (default 3600; short to test refreshes)
# Access tokens: audience FLYTERS_OIDC_AUDIENCE (default flyte-rs), scope `all`.
#
# Environment:
#   FLYTERS_OIDC_DATA   data directory    (default /tmp/flyte-rs-oidc)
#   FLYTERS_OIDC_PORT   first port tried  (default 9030; the next free one is used if taken)
#   FLYTERS_OIDC_CACHE  install root      (default ~/.cache/flyte-rs/oidc-provider)
#   scripts/oidc.sh stop     stops the provider started on FLYTERS_OIDC_DATA
#   scripts/oidc.sh rotate   signs with a new key from now on (the previous one stays
#                            published), restarting the provider on the same port
set -euo pipefail

VERSION=9.13.3
DATA="${FLYTERS_OIDC_DATA:-/tmp/flyte-rs-oidc}"
PORT="${FLYTERS_OIDC_PORT:-9030}"
CACHE="${FLYTERS_OIDC_CACHE:-$HOME/.cache/flyte-rs/oidc-provider}"
HOST=127.0.0.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { echo "oidc.sh: $*" >&2; }
# shellcheck source=lib/local-server.sh
source "$HERE/lib/local-server.sh"

mkdir -p "$DATA"
case "${1:-}" in
  stop)
    local_server_stop
    exit 0
    ;;
  rotate)
    [[ -f "$DATA/server.port" ]] || { log "no provider recorded in $DATA"; exit 1; }
    PORT="$(cat "$DATA/server.port")"
    pid="$(cat "$DATA/server.pid" 2>/dev/null || true)"
    local_server_stop
    # The same port (the issuer names it): wait until the old process has let go of it.
    for _ in $(seq 1 100); do
      if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then sleep 0.1; else break; fi
    done
    log "new signing key $(node "$HERE/oidc/keys.mjs" "$DATA/jwks.json" rotate)"
    ;;
esac

if [[ ! -f "$CACHE/node_modules/oidc-provider/package.json" ]] ||
  ! grep -q "\"version\": \"$VERSION\"" "$CACHE/node_modules/oidc-provider/package.json"; then
  log "installing oidc-provider $VERSION from npm into $CACHE"
  mkdir -p "$CACHE"
  npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error "oidc-provider@$VERSION" >&2
fi
# The provider's module resolves `oidc-provider` from its own directory: link the install.
ln -sfn "$CACHE/node_modules" "$DATA/node_modules"
cp "$HERE/oidc/provider.mjs" "$DATA/provider.mjs"
[[ -f "$DATA/jwks.json" ]] || log "signing key $(node "$HERE/oidc/keys.mjs" "$DATA/jwks.json")"

local_server_reuse && exit 0
# The issuer names the port, so it is chosen here, before the start.
while local_server_port_open "$PORT"; do PORT=$((PORT + 1)); done
log "starting oidc-provider $VERSION"
OIDC_ISSUER="http://$HOST:$PORT" \
  OIDC_PORT="$PORT" \
  OIDC_AUDIENCE="${FLYTERS_OIDC_AUDIENCE:-flyte-rs}" \
  OIDC_MACHINE_CLIENT_ID="${FLYTERS_OIDC_MACHINE_CLIENT_ID:-flyte-rs-machine}" \
  OIDC_MACHINE_CLIENT_SECRET="${FLYTERS_OIDC_MACHINE_CLIENT_SECRET:-flyte-rs-machine-secret}" \
  OIDC_PUBLIC_CLIENT_ID="${FLYTERS_OIDC_PUBLIC_CLIENT_ID:-flytectl}" \
  OIDC_REDIRECT_URI="http://localhost:53593/callback" \
  OIDC_CONSOLE_CLIENT_ID="${FLYTERS_OIDC_CONSOLE_CLIENT_ID:-flyte-console}" \
  OIDC_CONSOLE_CLIENT_SECRET="${FLYTERS_OIDC_CONSOLE_CLIENT_SECRET:-flyte-console-secret}" \
  OIDC_CONSOLE_TOKEN_TTL="${FLYTERS_OIDC_CONSOLE_TOKEN_TTL:-3600}" \
  OIDC_JWKS_FILE="$DATA/jwks.json" \
  NODE_ENV=development \
  local_server_start 200 node "$DATA/provider.mjs"
