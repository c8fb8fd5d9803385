#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server for the metadata store's conformance tests.
#
#   export FLYTERS_TEST_POSTGRES_URL=$(scripts/postgres.sh)
#
# Idempotent: installs PostgreSQL from Debian's packages only if no server binaries are
# present, initialises a cluster only if the data directory is empty, and reuses a server
# that is already running on it. Trust authentication on 127.0.0.1 only: for local tests,
# never for real data. Everything but the URL goes to stderr; the URL is the last line.
#
# Environment:
#   FLYTERS_PG_DATA  data directory   (default /tmp/flyte-rs-postgres)
#   FLYTERS_PG_PORT  first port tried (default 54329; the next free one is used if taken)
#   scripts/postgres.sh stop           stops the server started on FLYTERS_PG_DATA
set -euo pipefail

DATA="${FLYTERS_PG_DATA:-/tmp/flyte-rs-postgres}"
PORT="${FLYTERS_PG_PORT:-54329}"
HOST=127.0.0.1

log() { echo "postgres.sh: $*" >&2; }

# Root cannot run postgres: run the server tools as the `postgres` user then.
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
      echo "$d"
      return 0
    fi
  done
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

install_postgres() {
  log "installing PostgreSQL from Debian packages"
  local sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
}

BIN="$(find_bindir || true)"
if [[ -z "$BIN" ]]; then
  install_postgres
  BIN="$(find_bindir)" || { log "no initdb/pg_ctl after installing postgresql"; exit 1; }
fi

if [[ "${1:-}" == "stop" ]]; then
  if [[ -f "$DATA/PG_VERSION" ]]; then
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
  fi
  exit 0
fi

# The data directory must belong to the user that runs the server.
mkdir -p "$DATA"
if [[ "$(id -u)" == 0 ]]; then
  chown postgres:postgres "$DATA"
fi
chmod 700 "$DATA"

# Reuse a server that already runs on this data directory.
if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  running_port="$(sed -n 4p "$DATA/postmaster.pid")"
  if "$BIN/pg_isready" -q -h "$HOST" -p "$running_port"; then
    log "reusing the server on $HOST:$running_port ($DATA)"
    echo "postgres://postgres@$HOST:$running_port/postgres"
    exit 0
  fi
fi

if [[ ! -f "$DATA/PG_VERSION" ]]; then
  log "initialising a cluster in $DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C >&2
fi

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  port_in_use "$PORT" || break
  PORT=$((PORT + 1))
done
if port_in_use "$PORT"; then
  log "no free port found"
  exit 1
fi

log "starting PostgreSQL ($BIN) on $HOST:$PORT"
# Test-only durability settings: fast, and nothing here needs to survive a crash.
as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start -o \
  "-c listen_addresses=$HOST -p $PORT -k $DATA -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >&2 \
  || { log "start failed; see $DATA/server.log"; tail -n 20 "$DATA/server.log" >&2 || true; exit 1; }

for _ in $(seq 1 60); do
  "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" && break
  sleep 0.5
done
"$BIN/pg_isready" -q -h "$HOST" -p "$PORT" || { log "server did not become ready"; exit 1; }

echo "postgres://postgres@$HOST:$PORT/postgres"
