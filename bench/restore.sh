#!/usr/bin/env bash
# Benchmark: recovery time (RTO) of a full-cluster restore of a ~1 GiB snapshot on three
# members, and in the same run on the same hosts the floor:
#   playbook  playbooks/restore.yml: pin and verify the snapshot, copy it to every member and
#             check each copy, stop, move aside, restore, start together, check revision,
#             hashkv and key count on every member
#   floor     by hand on one member, the snapshot already there: etcdutl snapshot restore
#             (same flags) plus starting that one member until it answers /health
# Prints both, the ratio, and the playbook's own step table. Target: playbook <= 1.5 x floor
# plus a fixed overhead (Ansible's round trips and the copies), printed as measured.
#
# Env: SNAPSHOT_MIB (default 1024) database size to fill; KEEP_LAB=1 leaves the cluster running.
# The lab hosts are recreated fresh at the start and at the end, like the other benches.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export PATH="$PWD/.venv/bin:$PATH"

SNAPSHOT_MIB=${SNAPSHOT_MIB:-1024}
VERSION=3.5.30
IPS=(172.31.240.11 172.31.240.12 172.31.240.13)
KEY=.lab/ssh/id_ed25519
work="$PWD/.cache/bench/restore-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$work/snapshots"
pki="$work/pki"
extra=(-e "etcd_pki_controller_dir=$pki" -e "etcd_controller_cache_dir=$work/releases" -e etcd_backup_timer_enabled=false
  -e "etcd_version=$VERSION" -e "etcd_backup_fetch_dir=$work/snapshots" -e etcd_quota_backend_bytes=4294967296)

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
die() { echo "restore.sh: $*" >&2; exit 1; }
on() { ssh -i "$KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "ops@$1" "$2"; }
play() {  # play LOG PLAYBOOK ARGS...
  local out=$1; shift
  ansible-playbook -i inventories/lab/hosts.yml "$@" "${extra[@]}" >"$work/$out" 2>&1 \
    || { tail -n 40 "$work/$out" >&2; die "$1 failed, see $work/$out"; }
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  if [[ ${KEEP_LAB:-0} != 1 ]]; then
    lab/down.sh >/dev/null 2>&1 || true
    lab/up.sh >/dev/null 2>&1 || echo "restore.sh: lab/up.sh failed; run it again" >&2
  fi
  echo "logs: $work"
  exit "$rc"
}

echo "restore benchmark: ~$SNAPSHOT_MIB MiB snapshot, etcd $VERSION, 3 members, $(nproc) cores"
log "recreating the lab hosts"
lab/down.sh >/dev/null
lab/up.sh >/dev/null
trap cleanup EXIT

log "provisioning"
play provision.log playbooks/site.yml -e etcd_disk_fsync_p99_max_ms=100

# 512 KiB random values (incompressible, under etcd's 1.5 MiB request limit), written on the
# first member through its own etcdctl as admin.
log "filling ~$SNAPSHOT_MIB MiB"
on "${IPS[0]}" "sudo bash -lc 'head -c 393216 /dev/urandom | base64 -w0 > /tmp/value; \
  for i in \$(seq -w 1 $((SNAPSHOT_MIB * 2))); do etcdctl put /bench/restore/\$i < /tmp/value >/dev/null || exit 1; done; \
  etcdctl endpoint status -w table'" >"$work/fill.log" 2>&1 || die "filling failed, see $work/fill.log"

# The backup job itself takes it (on the leader); it is streamed out with ssh: Ansible's
# fetch reads root's files through base64 in memory under become, far too slow for 1 GiB.
log "taking the snapshot (the backup job, on every member: the leader takes it)"
for ip in "${IPS[@]}"; do on "$ip" "sudo systemctl start etcd-backup.service"; done
for ip in "${IPS[@]}"; do
  taken=$(on "$ip" "sudo cat /var/lib/etcd-backup/last-run.json" | python -c \
    'import json,sys; r=json.load(sys.stdin); print(r["snapshot"] if r["action"] == "taken" else "")')
  [[ -n $taken ]] || continue
  on "$ip" "sudo cat $taken" >"$work/snapshots/$(basename "$taken")"
  on "$ip" "sudo cat $taken.sha256" >"$work/snapshots/$(basename "$taken").sha256"
done
snapshot=$(find "$work/snapshots" -name '*.db' | head -n 1)
[[ -n $snapshot ]] || die "no member took a snapshot"
sha=$(sha256sum "$snapshot" | cut -d' ' -f1)
size=$(stat -c %s "$snapshot")

log "playbooks/restore.yml"
start=$(date +%s.%N)
# profile_tasks: the slowest tasks, printed below, show where the time before the stop goes.
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=12 \
  play restore.log playbooks/restore.yml -e "etcd_restore_snapshot=$snapshot" -e "etcd_restore_confirm=$sha"
end=$(date +%s.%N)
playbook_s=$(awk "BEGIN {print $end - $start}")

# The floor, on the first member with its copy of the snapshot already in place: the same
# restore command, then one member started on loopback ports until /health answers.
log "floor: etcdutl snapshot restore + start one member, by hand"
name=$(basename "$snapshot")
on "${IPS[0]}" "sudo bash -s" >"$work/floor.log" 2>&1 <<EOF || die "the floor run failed, see $work/floor.log"
set -e
d=/var/lib/etcd-bench-floor; rm -rf \$d
t0=\$(date +%s.%N)
/usr/local/bin/etcdutl snapshot restore /var/lib/etcd-restore/$name --name floor --data-dir \$d \
  --initial-cluster floor=http://127.0.0.1:12380 --initial-cluster-token floor --initial-advertise-peer-urls http://127.0.0.1:12380 \
  --bump-revision 1000000000 --mark-compacted >/dev/null
t1=\$(date +%s.%N)
/usr/local/bin/etcd --name floor --data-dir \$d --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
  --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 --listen-metrics-urls "" \
  --initial-cluster floor=http://127.0.0.1:12380 --quota-backend-bytes 4294967296 >/tmp/floor-etcd.log 2>&1 &
pid=\$!
until curl -fsS http://127.0.0.1:12379/health >/dev/null 2>&1; do sleep 0.05; done
t2=\$(date +%s.%N)
kill \$pid; wait \$pid || true
rm -rf \$d
echo "restore \$(awk "BEGIN {print \$t1 - \$t0}") start \$(awk "BEGIN {print \$t2 - \$t1}")"
EOF
read -r _ floor_restore _ floor_start < <(tail -n 1 "$work/floor.log")

echo
python - "$playbook_s" "$floor_restore" "$floor_start" "$size" "$work/restore.log" <<'PY'
import re, sys
playbook, restore, start, size, log = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
floor = restore + start
print("snapshot: %.0f MiB" % (size / 2**20))
print("%-34s %10s" % ("", "seconds"))
print("%-34s %10.1f" % ("floor: etcdutl restore", restore))
print("%-34s %10.1f" % ("floor: start one member to /health", start))
print("%-34s %10.1f" % ("floor total", floor))
print("%-34s %10.1f" % ("playbooks/restore.yml (wall clock)", playbook))
print("ratio playbook / floor: %.2f; overhead beyond 1.5 x floor: %.1f s" % (playbook / floor, playbook - 1.5 * floor))
text = open(log).read()
table = re.findall(r"- (?:'?)((?:step|stop every|move aside|start together|check revision|total)[^'\n]*)", text)
if table:
    print("the playbook's own steps (after the snapshot was pinned, copied and checked on every member):")
    for row in table:
        print("  " + row.strip())
slow = re.findall(r"^(.+?) -+ (\d+\.\d+)s$", text, re.M)
if slow:
    print("the slowest tasks (profile_tasks):")
    for name, secs in slow:
        print("  %6.1f s  %s" % (float(secs), name.strip()))
PY
