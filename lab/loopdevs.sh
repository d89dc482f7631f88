#!/usr/bin/env bash
# Loop devices that stand in for NVMe disks in the `volumes` molecule scenario.
#   lab/loopdevs.sh up    fresh backing files, attached; writes .cache/loopdevs.env
#   lab/loopdevs.sh down  detach them
# Each `up` starts from blank disks (and one disk that holds someone's data), so every
# test run sees the same devices.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/.cache/loop"
ENV="$ROOT/.cache/loopdevs.env"
DISKS=(m1-data m2-data m3-data m1-foreign)

detach() {
  local img=$1 dev
  for dev in $(losetup -j "$img" -O NAME -n 2>/dev/null); do losetup -d "$dev"; done
}

case "${1:-}" in
  up)
    mkdir -p "$DIR"
    : >"$ENV"
    for disk in "${DISKS[@]}"; do
      img="$DIR/$disk.img"
      [ -e "$img" ] && detach "$img"
      rm -f "$img"
      if [[ $disk == *-foreign ]]; then
        # Someone else's disk: an ext4 filesystem holding a file. It must survive untouched.
        content=$(mktemp -d)
        echo "payroll records, do not lose" >"$content/important.txt"
        truncate -s 64M "$img"
        mkfs.ext4 -q -L backups -d "$content" "$img"
        rm -rf "$content"
      else
        truncate -s 3G "$img"   # sparse: costs no disk until written; above the 2 GiB quota
      fi
      dev=$(losetup -f --show "$img")
      var="LOOP_$(echo "${disk//-/_}" | tr '[:lower:]' '[:upper:]')"
      echo "$var=$dev" >>"$ENV"
      echo "loopdevs.sh: $disk -> $dev"
    done
    ;;
  down)
    for disk in "${DISKS[@]}"; do
      [ -e "$DIR/$disk.img" ] && detach "$DIR/$disk.img"
    done
    echo "loopdevs.sh: detached"
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
