#!/usr/bin/env bash
# Creates .venv with the real flytekit from PyPI (pinned) and pytest.
# FLYTERS_VENV: another place for it (default: .venv in the repository).
# Idempotent: when .venv already has exactly these pins, it returns at once.
# Prints the venv's python path on its last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLYTERS_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
REQS="$ROOT/tests/e2e/requirements.txt"
# tests/e2e/requirements.txt includes this one (flytekit's pin, also what flyte-rs installs).
TASK_REQS="$ROOT/crates/flyte-rs/task-requirements.txt"
STAMP="$VENV/.flyte-rs-requirements"

if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && cmp -s <(cat "$REQS" "$TASK_REQS") "$STAMP"; then
  echo "$VENV/bin/python"
  exit 0
fi

echo "setup-python: creating $VENV with $(${PYTHON} --version 2>&1)" >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
"$VENV/bin/python" -m pip install --quiet -r "$REQS" >&2
cat "$REQS" "$TASK_REQS" >"$STAMP"
echo "$VENV/bin/python"
