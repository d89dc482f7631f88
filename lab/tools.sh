#!/usr/bin/env bash
# Controller-side tools the tests need, unpacked into .cache/tools/bin without installing
# any package system-wide (installing Debian's prometheus would start a server here).
#   promtool  from Debian's prometheus package (`promtool check|test rules` in make test)
# apt-get download checks the .deb against apt's signed indexes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.cache/tools"
log() { echo "tools.sh: $*"; }
die() { echo "tools.sh: ERROR: $*" >&2; exit 1; }

if [[ -x $DEST/bin/promtool ]] && "$DEST/bin/promtool" --version >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null || die "apt-get not found: install promtool into $DEST/bin by hand"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download prometheus >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null
} || die "apt-get download prometheus failed"
dpkg-deb -x prometheus_*.deb x
install -d "$DEST/bin"
install -m 0755 x/usr/bin/promtool "$DEST/bin/promtool"
log "$("$DEST/bin/promtool" --version 2>&1 | head -1)"
