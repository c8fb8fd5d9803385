#!/usr/bin/env bash
# The benchmark suite in one command: builds the release binary, then bench/run.py starts
# `target/release/flyte-rs start` on a free port with a temporary data dir, drives it with the
# real flytekit client (pyflyte run --remote + FlyteRemote polling) and prints the tables.
# Arguments go to bench/run.py (--help): e.g. bench/run.sh --shapes chain-500,fan-out-6000
# Not a test: scripts/test.sh and CI never run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
python="$(scripts/setup-python.sh | tail -n 1)"
cargo build --release -p flyte-rs
target="${CARGO_TARGET_DIR:-$ROOT/target}"
exec "$python" bench/run.py --binary "$target/release/flyte-rs" "$@"
