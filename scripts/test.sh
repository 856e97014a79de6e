#!/usr/bin/env bash
# The whole test suite: installs what is missing, then format, lint, unit, property and
# real-mount integration tests. A green run means the mounts were tested: CI is set here, so
# a real-mount test fails (never skips) where FUSE is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-1}"
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The build without FUSE (`cargo install artifactfs --no-default-features`, for macOS and
# Windows users of `serve --webdav`): it builds, lints clean, and fuser is not in it.
cargo build --locked --no-default-features
cargo clippy --no-default-features --all-targets --locked -- -D warnings
if cargo tree --locked --no-default-features -e normal --prefix none | grep -E '^fuser '; then
  echo "FAIL: fuser is in the build without the fuse feature (cargo tree above)" >&2
  exit 1
fi
cargo test --locked --no-default-features --bin artifactfs
