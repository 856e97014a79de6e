#!/usr/bin/env bash
# Builds the Debian package target/debian/artifactfs_*.deb with cargo-deb (installed with
# `cargo install` when missing): the binary, mount.artifactfs for fstab and `mount -t`, the
# man pages and shell completions (made by the binary itself: `artifactfs man`,
# `artifactfs completions`), and the systemd user unit template artifactfs@.service.
#
#   bash scripts/package.sh              # prints the .deb's path last
#   sudo apt-get install ./target/debian/artifactfs_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install, once)" >&2
  cargo install cargo-deb --locked --quiet
fi
cargo build --release --locked -p artifactfs
bin="${CARGO_TARGET_DIR:-target}/release/artifactfs"
out=target/packaging
rm -rf "$out"
mkdir -p "$out/completions"
"$bin" man --dir "$out/man" >/dev/null
"$bin" completions bash >"$out/completions/artifactfs.bash"
"$bin" completions zsh >"$out/completions/_artifactfs"
"$bin" completions fish >"$out/completions/artifactfs.fish"
# mount(8) runs /usr/sbin/mount.artifactfs for `-t artifactfs` and fstab lines.
ln -s ../bin/artifactfs "$out/mount.artifactfs"
debs="${CARGO_TARGET_DIR:-target}/debian"
rm -f "$debs"/artifactfs_*.deb
cargo deb --no-build --locked -p artifactfs >&2
ls "$debs"/artifactfs_*.deb
