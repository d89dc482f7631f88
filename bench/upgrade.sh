#!/usr/bin/env bash
# Benchmark: 3.5.16 -> 3.5.30 under a writer's load (molecule/common/writer.py, aetcd over
# mutual TLS with failover), done twice on the same hosts in the same run:
#   playbook  playbooks/upgrade.yml (snapshot, followers one at a time, leadership handed to
#             an upgraded member, health and catch-up gates)
#   naive     restart members in inventory order on the new binary, no leadership transfer,
#             no health gates (what a hand-written loop does)
# Prints one row each: failed write attempts, acknowledged writes lost, longest stall,
# leader changes, total time. Between the rows the data is moved aside (dated) and 3.5.16
# is provisioned again.
#
# Env: WRITE_RATE (default 50) writes per second; KEEP_LAB=1 leaves the cluster running.
# The lab hosts are recreated fresh at the start and at the end, like the other benches.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export PATH="$PWD/.venv/bin:$PATH"

FROM=3.5.16
TO=3.5.30
WRITE_RATE=${WRITE_RATE:-50}
IPS=(172.31.240.11 172.31.240.12 172.31.240.13)
KEY=.lab/ssh/id_ed25519
work="$PWD/.cache/bench/upgrade-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$work"
pki="$work/pki"
writer_pid=""
extra=(-e "etcd_pki_controller_dir=$pki" -e "etcd_controller_cache_dir=$work/releases" -e etcd_backup_timer_enabled=false)

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
die() { echo "upgrade.sh: $*" >&2; exit 1; }
on() { ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "ops@$1" "$2"; }

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  [[ -n $writer_pid ]] && kill "$writer_pid" 2>/dev/null || true
  if [[ ${KEEP_LAB:-0} != 1 ]]; then
    lab/down.sh >/dev/null 2>&1 || true
    lab/up.sh >/dev/null 2>&1 || echo "upgrade.sh: lab/up.sh failed; run it again" >&2
  fi
  echo "logs: $work"
  exit "$rc"
}

endpoints=$(printf 'https://%s:2379,' "${IPS[@]}")
endpoints=${endpoints%,}
# The admin identity (root): with auth on only root may read the status the writer counts
# leader changes from.
tls=(--endpoints "$endpoints" --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key")

provision() {  # provision LOG: a fresh 3.5.16 cluster with auth on
  ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml "${extra[@]}" -e "etcd_version=$FROM" \
    >"$work/$1" 2>&1 || { tail -n 40 "$work/$1" >&2; die "provisioning failed, see $work/$1"; }
}

start_writer() {  # start_writer NAME
  python molecule/common/writer.py run "${tls[@]}" --prefix "/bench/$1/" --rate "$WRITE_RATE" \
    --out "$work/writer-$1.json" --stop-file "$work/writer-$1.stop" >"$work/writer-$1.log" 2>&1 &
  writer_pid=$!
  sleep 5
}

stop_writer() {  # stop_writer NAME: stop, then check every acknowledged write is there
  sleep 5
  touch "$work/writer-$1.stop"
  wait "$writer_pid"
  writer_pid=""
  python molecule/common/writer.py verify "${tls[@]}" --result "$work/writer-$1.json" >"$work/verify-$1.json" \
    || true
}

echo "upgrade benchmark: etcd $FROM -> $TO, 3 members, $WRITE_RATE writes/s, $(nproc) cores"
log "recreating the lab hosts"
lab/down.sh >/dev/null
lab/up.sh >/dev/null
trap cleanup EXIT

log "provisioning $FROM"
provision provision-1.log
log "playbooks/upgrade.yml under load"
start_writer playbook
start=$(date +%s.%N)
ansible-playbook -i inventories/lab/hosts.yml playbooks/upgrade.yml "${extra[@]}" -e "etcd_version=$TO" \
  >"$work/upgrade.log" 2>&1 || { tail -n 40 "$work/upgrade.log" >&2; die "the upgrade failed, see $work/upgrade.log"; }
end=$(date +%s.%N)
stop_writer playbook
awk "BEGIN {print $end - $start}" >"$work/seconds-playbook"

log "moving the data aside and provisioning $FROM again"
stamp=$(date +%Y%m%dT%H%M%S)
for ip in "${IPS[@]}"; do
  on "$ip" "sudo sh -c 'systemctl stop etcd && mv /var/lib/etcd /var/lib/etcd.bench-$stamp && rm -f /usr/local/bin/etcd /usr/local/bin/etcdctl /usr/local/bin/etcdutl'"
done
provision provision-2.log
log "naive: each member in inventory order, new binary, restart, no waiting"
start_writer naive
start=$(date +%s.%N)
for ip in "${IPS[@]}"; do
  on "$ip" "sudo sh -c 'for b in etcd etcdctl etcdutl; do ln -sfn /opt/etcd/v$TO/\$b /usr/local/bin/\$b; done; systemctl restart etcd'"
done
end=$(date +%s.%N)
stop_writer naive
awk "BEGIN {print $end - $start}" >"$work/seconds-naive"

echo
python - "$work" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
print("%-9s %15s %10s %17s %8s %15s %10s" % ("", "failed writes", "lost acks", "longest stall ms", "p99 ms",
                                            "leader changes", "total s"))
for name in ("playbook", "naive"):
    run = json.loads((work / ("writer-%s.json" % name)).read_text())
    check = json.loads((work / ("verify-%s.json" % name)).read_text())
    changes = run.get("leader_changes")
    print("%-9s %15d %10d %17.0f %8.1f %15s %10.1f" % (
        name, len(run["failures"]), check["missing_count"], run["longest_stall_ms"], run["latency_ms"]["p99"],
        "?" if changes is None else changes, float((work / ("seconds-" + name)).read_text())))
print("(failed writes: attempts that failed and were retried on another member; lost acks: acknowledged"
      " writes missing afterwards; stall: longest time from a write's first attempt to its acknowledgement)")
PY
