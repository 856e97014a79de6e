#!/usr/bin/env bash
# The Debian package end to end, as a user gets it (CI runs this after the test suite): builds
# it (scripts/package.sh), installs it with apt-get, mounts the demo's repository through the
# installed binary twice — `mount -t fuse.artifactfs` (mount.fuse3) and `mount.artifactfs`
# (what mount(8) runs for an fstab line) — reads a file, checks `man artifactfs`, the
# completions and the user unit, then removes the package. Needs root (or sudo) and FUSE.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
asroot() { if [ -z "$sudo" ]; then "$@"; else sudo --preserve-env=GH_TOKEN "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
deb=$(bash scripts/package.sh | tail -1)
echo "package: $deb ($(du -h "$deb" | cut -f1))"
command -v man >/dev/null 2>&1 || $sudo apt-get install -y -qq man-db >/dev/null
case "$deb" in /*) ;; *) deb="./$deb" ;; esac  # apt-get takes a path only as ./ or /
$sudo apt-get install -y -qq "$deb" >/dev/null

work=$(mktemp -d)
gh_pid=""
cleanup() {
  for m in "$work"/mnt*; do mountpoint -q "$m" 2>/dev/null && $sudo umount -l "$m" || true; done
  [ -n "$gh_pid" ] && kill "$gh_pid" 2>/dev/null || true
  $sudo apt-get remove -y -qq artifactfs >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The demo's fake GitHub, from the installed binary.
/usr/bin/artifactfs demo --github-only >"$work/gh.env" &
gh_pid=$!
for _ in $(seq 100); do grep -q '^REPO=' "$work/gh.env" && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$work/gh.env"
export GH_TOKEN
want="42 tests, 2 failed"

mounted_read() { # MOUNTPOINT HOW
  local f="$1/$REPO/runs/7100000102/test-results/summary.txt"
  grep -q "$want" "$f" || { echo "FAIL: $2: $f does not say '$want'" >&2; exit 1; }
  $sudo umount "$1"
  echo "ok: $2 mounted the demo and read a file through the installed binary"
}

mkdir "$work/mnt1" "$work/mnt2"
asroot mount -t fuse.artifactfs "$REPO" "$work/mnt1" \
  -o "ro,api_url=$GITHUB_API_URL,cache_dir=$work/cache1"
mounted_read "$work/mnt1" "mount -t fuse.artifactfs"
test -L /usr/sbin/mount.artifactfs
asroot /usr/sbin/mount.artifactfs "$REPO" "$work/mnt2" \
  -o "ro,api_url=$GITHUB_API_URL,cache_dir=$work/cache2"
mounted_read "$work/mnt2" "mount.artifactfs"

man -w artifactfs >/dev/null
man artifactfs 2>/dev/null | grep -q "THE TREE" || { echo "FAIL: man artifactfs" >&2; exit 1; }
man artifactfs-mount 2>/dev/null | grep -q -- "--cache-size" || { echo "FAIL: man artifactfs-mount" >&2; exit 1; }
echo "ok: man artifactfs, man artifactfs-mount"
grep -q "artifactfs" /usr/share/bash-completion/completions/artifactfs
test -s /usr/share/zsh/vendor-completions/_artifactfs
test -s /usr/share/fish/vendor_completions.d/artifactfs.fish
grep -q '^ExecStart=/usr/bin/artifactfs mount %f --foreground' /usr/lib/systemd/user/artifactfs@.service
if command -v systemd-analyze >/dev/null 2>&1; then
  # An instance of the template, checked as systemd parses it (commands, specifiers).
  ln -s /usr/lib/systemd/user/artifactfs@.service "$work/artifactfs@home-u-a.service"
  if out=$(systemd-analyze verify --man=no "$work/artifactfs@home-u-a.service" 2>&1) && [ -z "$out" ]; then
    echo "ok: systemd-analyze verify artifactfs@home-u-a.service"
  else
    echo "FAIL: systemd-analyze verify: $out" >&2
    exit 1
  fi
fi
echo "ok: completions (bash, zsh, fish) and the user unit are installed"

kill "$gh_pid"; gh_pid=""
$sudo apt-get remove -y -qq artifactfs >/dev/null
if command -v artifactfs >/dev/null 2>&1; then echo "FAIL: artifactfs still installed" >&2; exit 1; fi
echo "ok: removed"
