#!/usr/bin/env bash
# Regenerates the README's screenshots of `artifactfs serve` (docs/serve-report.png,
# docs/serve-listing.png) from the built-in demo data (`artifactfs demo --serve`), with
# headless Chromium. No token, no network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --locked
bin="${CARGO_TARGET_DIR:-target}/debug/artifactfs"
work="$(mktemp -d)"
out="$work/serve.out"
"$bin" demo --serve 127.0.0.1:0 --cache-dir "$work/cache" >"$out" 2>"$work/serve.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  grep -q '^artifactfs serve: http://' "$out" 2>/dev/null && break
  sleep 0.1
done
base="$(grep -o 'http://[^ ]*' "$out" | head -1)" # http://127.0.0.1:PORT/octo-demo/hello-artifacts/
[ -n "$base" ] || { cat "$work/serve.err" >&2; exit 1; }

shot() { # FILE URL
  chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --hide-scrollbars --user-data-dir="$work/profile" --virtual-time-budget=5000 \
    --window-size=1000,700 --screenshot="$1" "$2" 2>/dev/null
  echo "wrote $1 ($2)"
}
# The run on feature/login has failing tests: a report with some red in it.
shot docs/serve-report.png "${base}branches/feature%252Flogin/html-report/"
shot docs/serve-listing.png "${base}runs/7100000102/"
