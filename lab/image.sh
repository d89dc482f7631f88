#!/usr/bin/env bash
# Build the lab base image: Debian bookworm (debootstrap minbase) with systemd as
# PID 1, sshd with per-container host keys, and a passwordless-sudo user `ops`
# holding the public key of .lab/ssh/id_ed25519.
#
# Env:
#   LAB_IMAGE          image name (default etcd-lab-base:bookworm). A different name
#                      that already exists locally without our build label (e.g. an
#                      image pulled from your registry) is used as is.
#   LAB_DEBIAN_MIRROR  Debian mirror URI; default: the first one in the machine's
#                      apt sources.
# The image carries the label io.etcd-lab.build-hash (hash of this script and the
# public key): a rerun with an unchanged script and key does nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFAULT_IMAGE="etcd-lab-base:bookworm"
IMAGE="${LAB_IMAGE:-$DEFAULT_IMAGE}"
SUITE=bookworm
KEY="$ROOT/.lab/ssh/id_ed25519"
CACHE="$ROOT/.cache"
ROOTFS="$CACHE/image-rootfs"
LABEL=io.etcd-lab.build-hash
# The lab network has no route out, so the packages the roles install (fio, rclone,
# node exporter, Prometheus) are baked in; on real hosts the roles install them with apt.
# python3-cryptography: members generate their own keys with community.crypto (no route out
# in the lab); debootstrap cannot resolve its virtual cffi dependency, so name it too.
PACKAGES=(
  systemd systemd-sysv dbus libpam-systemd python3 python3-apt python3-cryptography python3-cffi-backend openssh-server sudo
  iproute2 iputils-ping procps ca-certificates less xz-utils curl netbase e2fsprogs fio
  openssl rclone prometheus-node-exporter prometheus
)

log() { echo "image.sh: $*"; }
die() { echo "image.sh: ERROR: $*" >&2; exit 1; }

# shellcheck source=lab/lib.sh
. "$ROOT/lab/lib.sh"

# Lab SSH keypair (.lab/ is gitignored and also holds the CA: never delete it here).
if [[ ! -f $KEY ]]; then
  install -d -m 0700 "$(dirname "$KEY")"
  ssh-keygen -q -t ed25519 -N '' -C etcd-lab-ops -f "$KEY"
  log "generated $KEY"
fi

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
  die "docker engine not available; run lab/engine.sh first"
fi

HASH="$( (cat "${BASH_SOURCE[0]}" "$KEY.pub") | sha256sum | cut -c1-16)"
OLD_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if [[ -n $OLD_ID ]]; then
  have="$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
  [[ $have == "<no value>" ]] && have=""
  if [[ $have == "$HASH" ]]; then
    log "$IMAGE is up to date ($LABEL=$HASH)"; exit 0
  fi
  # A foreign ready-made image (no label of ours) under a user-chosen name: use it.
  if [[ -z $have && $IMAGE != "$DEFAULT_IMAGE" ]]; then
    log "using existing image $IMAGE (not built here)"; exit 0
  fi
  log "$IMAGE is stale (label '${have:-none}', want $HASH): rebuilding"
fi

[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

# Unmount anything debootstrap left mounted (interrupted run) before deleting, and
# never cross into another file system while deleting.
cleanup() {
  if [[ -d $ROOTFS ]]; then
    awk -v r="$ROOTFS" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts \
      | sort -r | xargs -r -n1 umount -l
    rm -rf --one-file-system "$ROOTFS"
  fi
}
trap cleanup EXIT
cleanup

MIRROR="$(debian_mirror)"
start=$SECONDS
log "debootstrap $SUITE from the apt-configured mirror into $ROOTFS"
mkdir -p "$CACHE/debootstrap-debs"
# --cache-dir keeps the .debs so a rebuild does not download them again.
debootstrap --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --cache-dir="$CACHE/debootstrap-debs" "$SUITE" "$ROOTFS" "$MIRROR" \
  >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"

in_root() { chroot "$ROOTFS" "$@"; }

# Each container must get its own identity: no machine-id, no host keys baked in.
# systemd writes a fresh machine-id at first boot.
rm -f "$ROOTFS/etc/machine-id" "$ROOTFS/var/lib/dbus/machine-id" "$ROOTFS"/etc/ssh/ssh_host_*
cat >"$ROOTFS/etc/systemd/system/ssh-hostkeys.service" <<'EOF'
[Unit]
Description=Generate SSH host keys unique to this container
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
RequiredBy=ssh.service
WantedBy=multi-user.target
EOF
# Inside a container systemd-fstab-generator ignores block-device lines in /etc/fstab by
# design, so a lab "host" would never mount its data volume at boot. This unit does what the
# generator does on bare metal: mount the fstab device entries early, before etcd starts.
cat >"$ROOTFS/etc/systemd/system/lab-fstab-devices.service" <<'EOF'
[Unit]
Description=Lab only: mount /etc/fstab device entries (systemd skips them in containers)
DefaultDependencies=no
After=systemd-remount-fs.service
Before=local-fs.target

[Service]
Type=oneshot
ExecStart=/bin/mount -a -t ext4,xfs
RemainAfterExit=yes

[Install]
WantedBy=local-fs.target
EOF
in_root systemctl enable ssh.service ssh-hostkeys.service lab-fstab-devices.service >/dev/null 2>&1
# fio's package enables an unauthenticated network server (fio.service, port 8765).
in_root systemctl mask fio.service >/dev/null 2>&1
# firstboot fails without a tty (system would report degraded); the others have
# no hardware to manage in a container.
in_root systemctl mask systemd-firstboot.service getty@tty1.service console-getty.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
  dev-hugepages.mount systemd-remount-fs.service >/dev/null 2>&1

# The monitoring roles configure TLS before they enable these; until then nothing listens.
# systemd applies presets at first boot (no machine-id yet), so disable them there too.
in_root systemctl disable prometheus.service prometheus-node-exporter.service >/dev/null 2>&1
install -d "$ROOTFS/etc/systemd/system-preset"
printf 'disable prometheus.service\ndisable prometheus-node-exporter.service\n' \
  >"$ROOTFS/etc/systemd/system-preset/10-etcd-lab.preset"

# Non-root admin user for Ansible: key-only login ('*' = no password, not locked).
in_root useradd --create-home --shell /bin/bash --user-group ops
in_root usermod -p '*' ops
install -d -m 0700 "$ROOTFS/home/ops/.ssh"
install -m 0600 "$KEY.pub" "$ROOTFS/home/ops/.ssh/authorized_keys"
in_root chown -R ops:ops /home/ops/.ssh
echo 'ops ALL=(ALL) NOPASSWD:ALL' >"$ROOTFS/etc/sudoers.d/ops"
chmod 0440 "$ROOTFS/etc/sudoers.d/ops"
in_root visudo -cqf /etc/sudoers.d/ops || die "bad sudoers fragment"

# pam_env warns on every SSH login without it; C.UTF-8 ships with libc.
echo 'LANG=C.UTF-8' >"$ROOTFS/etc/default/locale"

# Smaller image: package caches are useless offline.
in_root apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*

log "importing $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  -c 'CMD ["/sbin/init"]' -c 'ENV container=docker' \
  -c "LABEL $LABEL=$HASH" - "$IMAGE" >/dev/null
NEW_ID="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
# Drop the superseded image unless a container still uses it.
if [[ -n $OLD_ID && $OLD_ID != "$NEW_ID" ]]; then
  docker image rm "$OLD_ID" >/dev/null 2>&1 || log "kept old image ${OLD_ID:7:12} (still in use)"
fi
log "built $IMAGE (${NEW_ID:7:12}, $LABEL=$HASH) in $((SECONDS - start)) s"
