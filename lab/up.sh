#!/usr/bin/env bash
# Bring up the lab hosts etcd-lab-1..3, etcd-lab-mon, etcd-lab-drill (systemd + sshd containers) on an internal
# Docker network, and wait until `ssh ops@IP sudo -n true` works on each.
#
# Env:
#   LAB_IMAGE    image to run (default etcd-lab-base:bookworm; built by lab/image.sh)
#   LAB_NETWORK  docker network name (default etcd-lab); subnet 172.31.240.0/24
#   LAB_TIMEOUT  seconds to wait per host for boot and for SSH (default 90)
# Running containers are left alone; stopped ones are started.
# Output: one "name ip" line per host on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB="$(dirname "${BASH_SOURCE[0]}")"
IMAGE="${LAB_IMAGE:-etcd-lab-base:bookworm}"
NETWORK="${LAB_NETWORK:-etcd-lab}"
TIMEOUT="${LAB_TIMEOUT:-90}"
SUBNET=172.31.240.0/24
declare -A IPS=([etcd-lab-1]=172.31.240.11 [etcd-lab-2]=172.31.240.12 [etcd-lab-3]=172.31.240.13 [etcd-lab-mon]=172.31.240.20 [etcd-lab-drill]=172.31.240.30)
HOSTS=(etcd-lab-1 etcd-lab-2 etcd-lab-3 etcd-lab-mon etcd-lab-drill)
KEY="$ROOT/.lab/ssh/id_ed25519"
SSH_OPTS=(-i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o BatchMode=yes -o ConnectTimeout=3 -o LogLevel=ERROR)
# Flags verified on this machine (shared reference): systemd as PID 1 without
# --privileged, which fails here.
# SIGRTMIN+3 is systemd's "halt" signal, so `docker stop` shuts down cleanly.
RUN_FLAGS=(--cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns=host
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock
  --stop-signal SIGRTMIN+3 --restart unless-stopped)

log() { echo "up.sh: $*" >&2; }
die() { echo "up.sh: ERROR: $*" >&2; exit 1; }

# Engine and image are cheap no-ops when already in place.
"$LAB/engine.sh" >&2
LAB_IMAGE="$IMAGE" "$LAB/image.sh" >&2
[[ -f $KEY.pub ]] || die "missing $KEY.pub"

# Internal network: the host reaches the containers, the containers reach nothing.
if docker network inspect "$NETWORK" >/dev/null 2>&1; then
  read -r internal subnet < <(docker network inspect -f \
    '{{.Internal}} {{range .IPAM.Config}}{{.Subnet}}{{end}}' "$NETWORK")
  [[ $internal == true && $subnet == "$SUBNET" ]] \
    || die "network $NETWORK exists with internal=$internal subnet=$subnet; want true $SUBNET (run lab/down.sh)"
else
  docker network create --internal --subnet "$SUBNET" "$NETWORK" >/dev/null
  log "created network $NETWORK ($SUBNET, internal)"
fi

image_id="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
for h in "${HOSTS[@]}"; do
  state="$(docker inspect -f '{{.State.Status}}' "$h" 2>/dev/null || true)"
  case $state in
    running)
      [[ $(docker inspect -f '{{.Image}}' "$h") == "$image_id" ]] \
        || log "$h runs an older image than $IMAGE (lab/down.sh && lab/up.sh to refresh)" ;;
    restarting) ;; # crash loop: reported below
    "")
      docker run -d --name "$h" --hostname "$h" --network "$NETWORK" --ip "${IPS[$h]}" \
        "${RUN_FLAGS[@]}" "$IMAGE" /sbin/init >/dev/null
      log "started $h" ;;
    *)
      docker start "$h" >/dev/null
      log "restarted $h (was $state)" ;;
  esac
done

# Host bootstrap (like cloud-init): make sure `ops` exists with sudo and our key, so
# a ready-made image without our key works too. No-op when already in place.
pub="$(cat "$KEY.pub")"
for h in "${HOSTS[@]}"; do
  # A crashing init shows up as "restarting"; say so instead of a docker exec error.
  for _ in 1 2 3 4 5; do
    [[ $(docker inspect -f '{{.State.Running}} {{.State.Restarting}}' "$h") == "true false" ]] && break
    sleep 1
  done
  [[ $(docker inspect -f '{{.State.Running}} {{.State.Restarting}}' "$h") == "true false" ]] \
    || die "$h is not running (see 'docker logs $h'); is $(docker inspect -f '{{.Config.Image}}' "$h") a systemd image?"
  docker exec -i -e PUB="$pub" "$h" sh -eu <<'EOF'
if ! id ops >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash --user-group ops
  usermod -p '*' ops
fi
if [ ! -f /etc/sudoers.d/ops ]; then
  echo 'ops ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/ops
  chmod 0440 /etc/sudoers.d/ops
fi
home="$(getent passwd ops | cut -d: -f6)"
f="$home/.ssh/authorized_keys"
if ! grep -qxF "$PUB" "$f" 2>/dev/null; then
  install -d -m 0700 -o ops -g ops "$home/.ssh"
  printf '%s\n' "$PUB" >>"$f"
  chown ops:ops "$f"; chmod 0600 "$f"
  echo "installed lab key for ops on $(hostname)" >&2
fi
EOF
done

wait_for() { # command...: retry each second until it succeeds or TIMEOUT passes
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}
system_up() { # running/degraded = booted; starting/initializing = keep waiting
  local s
  s="$(docker exec "$1" systemctl is-system-running 2>/dev/null || true)"
  [[ $s == running || $s == degraded ]]
}
ssh_ok() { ssh "${SSH_OPTS[@]}" "ops@${IPS[$1]}" sudo -n true </dev/null >/dev/null 2>&1; }

for h in "${HOSTS[@]}"; do
  wait_for system_up "$h" || die "$h: systemd not running/degraded after ${TIMEOUT}s: $(
    docker exec "$h" systemctl is-system-running 2>&1 || true); see 'docker exec $h systemctl --failed'"
  wait_for ssh_ok "$h" || die "$h: 'ssh ops@${IPS[$h]} sudo -n true' fails after ${TIMEOUT}s: $(
    ssh "${SSH_OPTS[@]}" "ops@${IPS[$h]}" sudo -n true </dev/null 2>&1 | tail -1)"
done

for h in "${HOSTS[@]}"; do
  echo "$h ${IPS[$h]}"
done
