#!/usr/bin/env bash
# Benchmarks (not tests): builds release binaries, runs bench/run.py against the fake GitHub
# server and writes docs/benchmarks.md and docs/benchmarks.svg. Needs root for dropping the
# page cache between warm-read runs (otherwise that row says so). Installs gh for the
# comparison when apt-get is available.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if ! command -v gh >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gh >/dev/null || true
fi
cargo build --release --locked -p artifactfs -p fake-github
exec python3 bench/run.py "$@"
