#!/usr/bin/env bash
# Builds artifactfs and mounts the built-in demo (a fake GitHub with a sample repository;
# no token, no network). Ctrl-C unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked
exec ./target/release/artifactfs demo "$@"
