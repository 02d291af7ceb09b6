#!/usr/bin/env bash
# Fetch the benchmark peers (mtail, wrk and wrk's LuaJIT) from Debian packages into .tools/,
# the way scripts/fetch-tools.sh fetches promtool: `apt-get download` + `dpkg -x`, no install,
# no service started. Idempotent. wrk finds its LuaJIT through LD_LIBRARY_PATH (see bench/peers.py).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/.tools"
if [ -x "$dest/usr/bin/mtail" ] && [ -x "$dest/usr/bin/wrk" ] \
   && ls "$dest"/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2* >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$dest/debs-bench"
cd "$dest/debs-bench"
pkgs="mtail wrk libluajit2-5.1-2"
if ! apt-get download $pkgs >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get download $pkgs
fi
for deb in ./*.deb; do dpkg -x "$deb" "$dest"; done
"$dest/usr/bin/mtail" --version 2>&1 | head -1
