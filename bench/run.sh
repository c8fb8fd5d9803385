#!/usr/bin/env bash
# The benchmark suite in one command: builds the release binary, then bench/run.py starts
# `target/release/flyte-rs start` on a free port with a temporary data dir, drives it with the
# real flytekit client (pyflyte run --remote + FlyteRemote polling) and prints the tables.
# Arguments go to bench/run.py (--help): e.g. bench/run.sh --shapes chain-500,fan-out-6000
# Held concurrency and the swarm: bench/run.sh --shapes held,swarm --held-runs 40 --swarm-runs 100
# The admin API benchmark (1,000,000 executions stored): bench/run.sh --admin-api [--rows N …]
# (bench/admin_api.py --help).
# Not a test: scripts/test.sh and CI never run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
python="$(scripts/setup-python.sh | tail -n 1)"
cargo build --release -p flyte-rs
target="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ "${1:-}" == "--admin-api" ]]; then
  shift
  exec "$python" bench/admin_api.py --binary "$target/release/flyte-rs" "$@"
fi
exec "$python" bench/run.py --binary "$target/release/flyte-rs" "$@"
