#!/usr/bin/env bash
# Starts a throw-away S3-compatible server for the blob store's conformance tests and the
# end-to-end suite with S3 as the blob store:
#
#   export FLYTERS_TEST_S3_ENDPOINT=$(scripts/s3.sh | tail -n 1)
#
# The server is s3s-fs (crates.io, from the s3s project): a real S3 protocol server over a
# directory — SigV4 headers and presigned URLs, Content-MD5 checked on PutObject — not a mock.
# It is built once with `cargo install --locked` into FLYTERS_S3_CACHE and reused after
# (about 3.5 CPU-minutes, 7 minutes wall on a busy 2-core machine). Idempotent: reuses a
# server that already answers on the data directory's recorded port. Everything but the
# endpoint goes to stderr; the endpoint is the last line.
#
# Credentials (test only): access key FLYTERS_S3_ACCESS_KEY (default flyters), secret
# FLYTERS_S3_SECRET_KEY (default flyters-secret-key); the bucket FLYTERS_S3_BUCKET (default
# flyte-rs) exists when this returns.
#
# Environment:
#   FLYTERS_S3_DATA   data directory    (default /tmp/flyte-rs-s3)
#   FLYTERS_S3_PORT   first port tried  (default 9010; the next free one is used if taken)
#   FLYTERS_S3_CACHE  install root      (default ~/.cache/flyte-rs/s3s-fs)
#   scripts/s3.sh stop                  stops the server started on FLYTERS_S3_DATA
set -euo pipefail

VERSION=0.14.1 # 0.17 needs a newer rustc than the toolchain here
DATA="${FLYTERS_S3_DATA:-/tmp/flyte-rs-s3}"
PORT="${FLYTERS_S3_PORT:-9010}"
CACHE="${FLYTERS_S3_CACHE:-$HOME/.cache/flyte-rs/s3s-fs}"
ACCESS="${FLYTERS_S3_ACCESS_KEY:-flyters}"
SECRET="${FLYTERS_S3_SECRET_KEY:-flyters-secret-key}"
BUCKET="${FLYTERS_S3_BUCKET:-flyte-rs}"
HOST=127.0.0.1
BIN="$CACHE/bin/s3s-fs"

log() { echo "s3.sh: $*" >&2; }
# shellcheck source=lib/local-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/local-server.sh"

if [[ "${1:-}" == "stop" ]]; then
  local_server_stop
  exit 0
fi

# s3s-fs 0.14.1 takes an empty `Delimiter=` (what s3fs, hence flytekit, sends to list a
# directory recursively) as a real delimiter and lists nothing; AWS S3 treats it as absent.
# The crate's source from crates.io gets these lines fixed before it is built.
STAMP="$CACHE/.flyte-rs-s3s-fs-$VERSION-fixes-2"
if [[ ! -x "$BIN" || ! -f "$STAMP" ]]; then
  log "building s3s-fs $VERSION from crates.io into $CACHE"
  start=$SECONDS
  build_dir="$(mktemp -d)"
  mkdir -p "$build_dir/fetch/src"
  echo 'fn main() {}' >"$build_dir/fetch/src/main.rs"
  printf '[package]\nname = "s3s-fs-fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\ns3s-fs = "=%s"\n[workspace]\n' \
    "$VERSION" >"$build_dir/fetch/Cargo.toml"
  cargo fetch --manifest-path "$build_dir/fetch/Cargo.toml" >&2
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"s3s-fs-$VERSION" | head -n 1)"
  cp -r "$src" "$build_dir/s3s-fs"
  chmod -R u+w "$build_dir/s3s-fs"
  sed -i 's/let delimiter = input.delimiter.as_deref();/let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());/' \
    "$build_dir/s3s-fs/src/s3.rs"
  # HeadObject of a "directory" (a key prefix, as pandas/fsspec probe it) fails with 500
  # (it reads the directory as a file); AWS answers 404 there.
  perl -0pi -e 's/(let path = self\.get_object_path\(&input\.bucket, &input\.key\)\?;\n\n\s*if )!path\.exists\(\) \{/$1!path.is_file() {/' \
    "$build_dir/s3s-fs/src/s3.rs"
  if ! grep -q 'filter(|d| !d.is_empty())' "$build_dir/s3s-fs/src/s3.rs" ||
    ! grep -q 'if !path.is_file() {' "$build_dir/s3s-fs/src/s3.rs"; then
    log "could not apply the listing and HeadObject fixes to s3s-fs $VERSION"
    exit 1
  fi
  cargo install --path "$build_dir/s3s-fs" --features binary --locked --force \
    --root "$CACHE" --target-dir "$build_dir/target" >&2
  rm -rf "$build_dir"
  touch "$STAMP"
  log "built in $((SECONDS - start)) s"
fi

mkdir -p "$DATA/root/$BUCKET"
local_server_reuse && exit 0
log "starting s3s-fs, bucket $BUCKET"
local_server_start 100 "$BIN" --host "$HOST" --port "{PORT}" --access-key "$ACCESS" \
  --secret-key "$SECRET" "$DATA/root"
