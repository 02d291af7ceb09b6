#!/usr/bin/env bash
# Fetch Prometheus/promtool and Alertmanager/amtool from Debian packages into .tools/
# without installing or starting any service. Idempotent.
# Note: Debian's alertmanager reads its notification templates from the fixed path
# /usr/share/prometheus/alertmanager; lab.stack.relocatable_alertmanager runs a copy whose
# path points at the unpacked .tools/usr/share templates instead (tests and `make demo` use it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/.tools"
if [ -x "$dest/usr/bin/promtool" ] && [ -x "$dest/usr/bin/amtool" ] \
   && [ -x "$dest/usr/bin/prometheus" ] && [ -x "$dest/usr/bin/prometheus-alertmanager" ]; then
  exit 0
fi
mkdir -p "$dest/debs"
cd "$dest/debs"
echo "==> downloading the Debian packages prometheus and prometheus-alertmanager (apt-get download, nothing is installed)"
if ! apt-get download prometheus prometheus-alertmanager >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get download prometheus prometheus-alertmanager
fi
for deb in ./*.deb; do echo "==> unpacking $deb into $dest"; dpkg -x "$deb" "$dest"; done
"$dest/usr/bin/promtool" --version 2>&1 | head -1
"$dest/usr/bin/amtool" --version 2>&1 | head -1
