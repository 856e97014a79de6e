#!/usr/bin/env bash
# Installs what artifactfs needs to mount and to run its tests (Debian/Ubuntu): fuse3
# (fusermount3), attr (getfattr), unzip, curl and sqlite3 for the tests, chromium for the
# real-browser test of `artifactfs serve` (and scripts/screenshots.sh), and the WebDAV clients
# rclone, cadaver and davfs2 for `serve --webdav`. Idempotent and quiet when everything is
# already there.
set -euo pipefail
need=()
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v getfattr >/dev/null 2>&1 || need+=(attr)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
command -v curl >/dev/null 2>&1 || need+=(curl)
# sqlite3: an indexed query on a deflated database in an artifact (tests/sqlite.rs, the bench).
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# WebDAV clients for the tests of `serve --webdav`.
command -v rclone >/dev/null 2>&1 || need+=(rclone)
command -v cadaver >/dev/null 2>&1 || need+=(cadaver)
command -v mount.davfs >/dev/null 2>&1 || need+=(davfs2)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -e /dev/fuse ]; then
  echo "warning: /dev/fuse is missing (modprobe fuse, or run the container with --device /dev/fuse)" >&2
fi
