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
