#!/usr/bin/env bash
# Benchmark: the backup job on a ~1 GiB database (snapshot save, then verify), and client
# write latency while that snapshot runs against the same load with no snapshot, in the
# same run on the same cluster.
#
# Env: DB_BYTES     (default 1073741824)  database size to build before the snapshot
#      WRITE_RATE   (default 100)         writes per second during both loads
#      LOAD_SECONDS (default 90)          length of each load; the job starts 5 s into the second
#      KEEP_LAB=1   leave the benchmark cluster running at the end
# The lab hosts are recreated fresh at the start and at the end, like the other benches.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export PATH="$PWD/.venv/bin:$PATH"

DB_BYTES=${DB_BYTES:-1073741824}
WRITE_RATE=${WRITE_RATE:-100}
LOAD_SECONDS=${LOAD_SECONDS:-90}
IPS=(172.31.240.11 172.31.240.12 172.31.240.13)
KEY=.lab/ssh/id_ed25519
work="$PWD/.cache/bench/backup-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$work"
pki="$work/pki"
load_pid=""

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
die() { echo "backup.sh: $*" >&2; exit 1; }
on() { ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "ops@$1" "$2"; }

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  [[ -n $load_pid ]] && kill "$load_pid" 2>/dev/null || true
  if [[ ${KEEP_LAB:-0} != 1 ]]; then
    lab/down.sh >/dev/null 2>&1 || true
    lab/up.sh >/dev/null 2>&1 || echo "backup.sh: lab/up.sh failed; run it again" >&2
  fi
  echo "logs: $work"
  exit "$rc"
}

endpoints=$(printf 'https://%s:2379,' "${IPS[@]}")
endpoints=${endpoints%,}
tls=(--cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key")

echo "backup benchmark: etcd ${ETCD_VERSION:-3.5.30}, 3 members, database $((DB_BYTES / 1048576)) MiB," \
  "$WRITE_RATE writes/s for $LOAD_SECONDS s per load, $(nproc) cores"
log "recreating the lab hosts"
lab/down.sh >/dev/null
lab/up.sh >/dev/null
trap cleanup EXIT

log "provisioning (quota 4 GiB, timer off so only this run snapshots)"
# Auth off: the load generator speaks the JSON gateway, which ignores client-certificate CNs.
ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml -e "etcd_pki_controller_dir=$pki" \
  -e "etcd_controller_cache_dir=$work/releases" -e etcd_quota_backend_bytes=4294967296 \
  -e etcd_backup_timer_enabled=false -e '{"etcd_rbac_enabled": false}' >"$work/provision.log" 2>&1 \
  || { tail -n 40 "$work/provision.log" >&2; die "provisioning failed, see $work/provision.log"; }

log "filling the database to $((DB_BYTES / 1048576)) MiB"
python bench/backup_load.py fill "${tls[@]}" --endpoints "$endpoints" --bytes "$DB_BYTES" | tee "$work/fill.json"

log "load without a snapshot"
python bench/backup_load.py load "${tls[@]}" --endpoints "$endpoints" --rate "$WRITE_RATE" \
  --seconds "$LOAD_SECONDS" --out "$work/load-baseline.json"

log "load with the backup job started 5 s in (every member starts it; the leader takes it)"
python bench/backup_load.py load "${tls[@]}" --endpoints "$endpoints" --rate "$WRITE_RATE" \
  --seconds "$LOAD_SECONDS" --out "$work/load-snapshot.json" &
load_pid=$!
sleep 5
job_pids=()
for ip in "${IPS[@]}"; do
  on "$ip" "sudo systemctl start etcd-backup.service" >"$work/start-$ip.log" 2>&1 &
  job_pids+=($!)
done
wait "${job_pids[@]}" || die "the backup job failed; see $work/start-*.log"
taker=""
for ip in "${IPS[@]}"; do
  on "$ip" "sudo cat /var/lib/etcd-backup/last-run.json" >"$work/job-$ip.json"
  grep -q '"action": "taken"' "$work/job-$ip.json" && cp "$work/job-$ip.json" "$work/job.json" && taker=$ip
done
wait "$load_pid"
load_pid=""
[[ -f $work/job.json ]] || die "no member took a snapshot; see $work/job-*.json"

echo
python - "$work/job.json" "$work/fill.json" "$taker" <<'PY'
import json, sys
job, fill = json.load(open(sys.argv[1])), json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print("database before the snapshot: %.0f MiB (%d keys)" % (fill["db_size"] / 2**20, fill["keys"]))
print("snapshot by the leader %s: %.0f MiB, revision %d" % (sys.argv[3], job["size"] / 2**20, job["revision"]))
print("  save %.1f s + verify %.1f s = %.1f s (the job's own clock); whole run %.1f s" % (
    job["save_seconds"], job["verify_seconds"], job["duration_seconds"], job["finished"] - job["started"]))
PY
echo
python bench/backup_load.py report --baseline "$work/load-baseline.json" --during "$work/load-snapshot.json" \
  --job "$work/job.json"
