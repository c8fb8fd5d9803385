#!/usr/bin/env bash
# Builds the container image (deploy/Dockerfile) and proves it works as docs/deploy.md runs it:
# the container becomes healthy, the real flytekit client registers and runs
# flytesnacks/examples/basics.py's arithmetic_wf through the container's port (its Python task
# runs inside the container, in the image's /opt/flyte-venv), the result is right, and after
# `docker restart` the execution is still there and a second run succeeds.
#
#   scripts/image-smoke.sh            # packages target/release/flyte-rs (BINARY_FROM=prebuilt)
#   scripts/image-smoke.sh --no-cargo # packages target/release/flyte-rs as it is
#   scripts/image-smoke.sh --full     # builds the binary inside the image (needs the rust and
#                                     # node base images from a registry)
#
# Needs a Docker engine (>= 20.10, BuildKit) and the base images the Dockerfile names.
# Not part of scripts/test.sh: CI has no Docker engine. Knobs (not configuration keys):
#   IMAGE_SMOKE_TAG (default flyte-rs:smoke), IMAGE_SMOKE_PORT (default 30099),
#   IMAGE_SMOKE_PIP_CERT: a CA bundle for pip behind a TLS-intercepting proxy (a build secret).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
tag="${IMAGE_SMOKE_TAG:-flyte-rs:smoke}"
port="${IMAGE_SMOKE_PORT:-30099}"
name="flyte-rs-image-smoke"
volume="flyte-rs-image-smoke-data"

docker info >/dev/null 2>&1 || {
  echo "image-smoke: no Docker engine answers (docker info failed); start dockerd first" >&2
  exit 1
}
python="$(scripts/setup-python.sh | tail -n 1)"

build_args=(-f deploy/Dockerfile -t "$tag")
case "${1:-}" in
  --full) ;;
  --no-cargo) build_args+=(--build-arg BINARY_FROM=prebuilt) ;;
  "") cargo build --release -p flyte-rs && build_args+=(--build-arg BINARY_FROM=prebuilt) ;;
  *) echo "usage: scripts/image-smoke.sh [--no-cargo|--full]" >&2; exit 2 ;;
esac
if [[ -n "${IMAGE_SMOKE_PIP_CERT:-}" ]]; then
  build_args+=(--secret "id=pip_cert,src=$IMAGE_SMOKE_PIP_CERT")
fi
echo "image-smoke: docker build ${build_args[*]} ." >&2
DOCKER_BUILDKIT=1 docker build "${build_args[@]}" .

cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
  rm -rf "${work:-}"
}
trap cleanup EXIT
cleanup

# As docs/deploy.md runs it on a single machine.
docker run -d --name "$name" -p "127.0.0.1:$port:30080" -v "$volume:/var/lib/flyte-rs" \
  -e FLYTE_RS_SERVER__ALLOW_CLEARTEXT=true \
  -e "FLYTE_RS_SERVER__PUBLIC_URL=http://127.0.0.1:$port" \
  "$tag" >/dev/null

wait_healthy() {
  for _ in $(seq 1 90); do
    state="$(docker inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || echo gone)"
    [[ "$state" == healthy ]] && return 0
    [[ "$state" == gone || "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]] && break
    sleep 1
  done
  echo "image-smoke: the container did not become healthy (last: $state); its log:" >&2
  docker logs "$name" 2>&1 | tail -40 >&2
  return 1
}
wait_healthy
echo "image-smoke: healthy; user $(docker exec "$name" id -u), $(docker exec "$name" flyte-rs --version)" >&2

work="$(mktemp -d)"
cat >"$work/config.yaml" <<EOF
admin:
  endpoint: dns:///127.0.0.1:$port
  insecure: true
EOF
run_and_check() {
  (cd "$ROOT/flytesnacks" && FLYTECTL_CONFIG="$work/config.yaml" \
    "$(dirname "$python")/pyflyte" run --remote examples/basics.py arithmetic_wf --a "$1") |
    tee "$work/run.log" >&2
  FLYTECTL_CONFIG="$work/config.yaml" "$python" - "$1" "$work/run.log" <<'EOF'
import re, sys
from flytekit.configuration import Config
from flytekit.remote import FlyteRemote

a, log = int(sys.argv[1]), open(sys.argv[2]).read()
name = re.search(r"executions/([a-z0-9]+)", log).group(1)
remote = FlyteRemote(Config.auto(), default_project="flytesnacks", default_domain="development")
ex = remote.wait(remote.fetch_execution(name=name), timeout=__import__("datetime").timedelta(minutes=5))
assert ex.closure.phase == 4, f"execution {name} ended in phase {ex.closure.phase}: {ex.closure.error}"
s = a + 2
total = a + 2 + s + (s + 2)
assert ex.outputs["total"] == total, (ex.outputs["total"], total)
print(f"image-smoke: {name} SUCCEEDED, total={total}")
with open(sys.argv[2] + ".name", "w") as f:
    f.write(name)
EOF
}
run_and_check 1
first="$(cat "$work/run.log.name")"

docker restart "$name" >/dev/null
wait_healthy
FLYTECTL_CONFIG="$work/config.yaml" "$python" - "$first" <<'EOF'
import sys
from flytekit.configuration import Config
from flytekit.remote import FlyteRemote
remote = FlyteRemote(Config.auto(), default_project="flytesnacks", default_domain="development")
ex = remote.fetch_execution(name=sys.argv[1])
assert ex.closure.phase == 4, ex.closure.phase
print(f"image-smoke: after docker restart, {sys.argv[1]} is still SUCCEEDED")
EOF
run_and_check 5
echo "image-smoke: passed ($tag, $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
