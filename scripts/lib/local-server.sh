# Shared by scripts/s3.sh and scripts/azurite.sh: one throw-away server a data directory,
# recorded in $DATA/server.pid and $DATA/server.port, reused while it answers.
#
# The caller sets DATA, HOST and PORT (the first port tried) and defines log(); then:
#   local_server_stop                  stops the recorded server, forgets it
#   local_server_reuse URL_SUFFIX      prints the endpoint and returns 0 if it still answers
#   local_server_start TRIES CMD...    starts CMD (with {PORT} replaced) in $DATA, waits up
#                                      to TRIES × 0.1 s for the port, prints the endpoint
# The endpoint is http://$HOST:<port> followed by URL_SUFFIX (LOCAL_SERVER_SUFFIX for start).

local_server_alive() { [[ -f "$DATA/server.pid" ]] && kill -0 "$(cat "$DATA/server.pid")" 2>/dev/null; }
local_server_port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

local_server_stop() {
  if local_server_alive; then
    kill "$(cat "$DATA/server.pid")" || true
    log "stopped the server on $DATA"
  fi
  rm -f "$DATA/server.pid" "$DATA/server.port"
}

local_server_reuse() {
  local suffix="${1:-}"
  if local_server_alive && [[ -f "$DATA/server.port" ]] &&
    local_server_port_open "$(cat "$DATA/server.port")"; then
    log "reusing the server on $HOST:$(cat "$DATA/server.port") ($DATA)"
    echo "http://$HOST:$(cat "$DATA/server.port")$suffix"
    return 0
  fi
  return 1
}

local_server_start() {
  local tries="$1"
  shift
  while local_server_port_open "$PORT"; do PORT=$((PORT + 1)); done
  local args=()
  for arg in "$@"; do args+=("${arg//\{PORT\}/$PORT}"); done
  # From the data directory: a server that resolves paths against its working directory
  # must not run in one that may be deleted (a checkout a test run removes: s3s-fs then
  # answered 500 to everything).
  (cd "$DATA" && exec nohup "${args[@]}" >"$DATA/server.log" 2>&1) &
  echo $! >"$DATA/server.pid"
  echo "$PORT" >"$DATA/server.port"
  for _ in $(seq 1 "$tries"); do
    if local_server_port_open "$PORT"; then
      log "listening on $HOST:$PORT (data in $DATA, log $DATA/server.log)"
      echo "http://$HOST:$PORT${LOCAL_SERVER_SUFFIX:-}"
      return 0
    fi
    if ! local_server_alive; then break; fi
    sleep 0.1
  done
  log "the server did not start:"
  cat "$DATA/server.log" >&2
  return 1
}
