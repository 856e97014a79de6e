#!/usr/bin/env bash
# The whole test suite: installs what is missing, then format, lint, unit, property and
# real-mount integration tests. Real-mount tests fail (not skip) when CI is set and FUSE
# is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
