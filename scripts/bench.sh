#!/usr/bin/env bash
# Benchmarks (not tests): builds release binaries, runs bench/run.py against the fake GitHub
# server (link model, then loopback) and writes docs/benchmarks.md and docs/benchmarks.svg.
#
#   bash scripts/bench.sh            # the full run (5 runs per row; about 20 minutes on 2 cores)
#   BENCH_RUNS=N bash scripts/bench.sh   # N runs per row
#   bash scripts/bench.sh --quick    # 2 runs per row, written to target/bench-quick/ instead
#   bash scripts/bench.sh --models loopback --rows head,lsr   # a part of it
#
# Needs root for dropping the page cache between warm and random-read runs (otherwise the warm
# row says so). Installs gh for the comparison when apt-get is available.
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
