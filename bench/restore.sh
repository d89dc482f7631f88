#!/usr/bin/env bash
# Benchmark: recovery time (RTO) of a full-cluster restore of a ~1 GiB snapshot on three
# members, against its floors, measured in the same run on the same hosts:
#   playbook     playbooks/restore.yml: pin and verify the snapshot, copy it to every member and
#                check each copy, stop, move aside, restore, start together, check revision,
#                hashkv and key count on every member
#   copy floor   putting the snapshot on every member: a plain ssh cat to each, all at once
#   check floor  verifying that copy on every member at once, as the playbook must before the
#                cluster is touched: sha256sum, then etcdutl snapshot status
#   floor        by hand on one member, from that copy: etcdutl snapshot restore (same flags)
#                plus starting that one member until it answers /health
# The same is measured with a small (~8 MiB) snapshot taken earlier in the run: what the
# playbook needs beyond its floors there is the fixed overhead (Ansible's tasks and round trips).
# Target: playbook <= 1.5 x floor + fixed overhead + copy floor + check floor.
# Each measurement starts after a sync: the containers share the disk and the page cache, and
# without it whichever runs first would also pay for writing back the
# gigabytes that filling and taking the snapshot left dirty.
#
# Env: SNAPSHOT_MIB (default 1024) database size to fill; KEEP_LAB=1 leaves the cluster running.
# The lab hosts are recreated fresh at the start and at the end, like the other benches.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export PATH="$PWD/.venv/bin:$PATH"

SNAPSHOT_MIB=${SNAPSHOT_MIB:-1024}
SMALL_MIB=8
VERSION=3.5.30
IPS=(172.31.240.11 172.31.240.12 172.31.240.13)
KEY=.lab/ssh/id_ed25519
STATE_DIR=/var/lib/etcd-restore
work="$PWD/.cache/bench/restore-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$work/small" "$work/big"
pki="$work/pki"
extra=(-e "etcd_pki_controller_dir=$pki" -e "etcd_controller_cache_dir=$work/releases" -e etcd_backup_timer_enabled=false
  -e "etcd_version=$VERSION" -e "etcd_backup_fetch_dir=$work/fetched" -e etcd_quota_backend_bytes=4294967296)

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
die() { echo "restore.sh: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk "BEGIN {print $(now) - $1}"; }
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

# fill FROM TO: 512 KiB random values (incompressible, under etcd's 1.5 MiB request limit),
# written on the first member through its own etcdctl as admin.
fill() {
  on "${IPS[0]}" "sudo bash -lc 'head -c 393216 /dev/urandom | base64 -w0 > /tmp/value; \
    for i in \$(seq -w $1 $2); do etcdctl put /bench/restore/\$i < /tmp/value >/dev/null || exit 1; done; \
    etcdctl endpoint status -w table'" >>"$work/fill.log" 2>&1 || die "filling failed, see $work/fill.log"
}

# take DIR: the backup job itself takes a snapshot (on the leader); it is streamed out with
# ssh (Ansible's fetch reads root's files through base64 in memory under become). Prints its path.
take() {
  local ip taken
  for ip in "${IPS[@]}"; do on "$ip" "sudo systemctl start etcd-backup.service"; done
  for ip in "${IPS[@]}"; do
    taken=$(on "$ip" "sudo cat /var/lib/etcd-backup/last-run.json" | python -c \
      'import json,sys; r=json.load(sys.stdin); print(r["snapshot"] if r["action"] == "taken" else "")')
    [[ -n $taken ]] || continue
    on "$ip" "sudo cat $taken" >"$1/$(basename "$taken")"
    on "$ip" "sudo cat $taken.sha256" >"$1/$(basename "$taken").sha256"
  done
  find "$1" -name '*.db' | head -n 1
}

# measure LABEL SNAPSHOT: the floors first, as an operator would do it by hand (copy, check,
# restore one member), into a folder of their own that is removed again, then the playbook,
# which has to copy the snapshot itself. Appends "label size playbook restore start copy
# check" to $work/figures.
measure() {
  local label=$1 snapshot=$2 name sha t0 playbook copy check restore start floor_dir=$STATE_DIR/floor
  name=$(basename "$snapshot")
  sha=$(sha256sum "$snapshot" | cut -d' ' -f1)

  # Untimed: the first gigabytes written after the fill go slower on this VM (2-3 s for the
  # copy, whichever measurement came first); a warm-up copy takes that, not a measurement.
  log "$label: warm-up copy (not timed)"
  for ip in "${IPS[@]}"; do
    on "$ip" "sudo sh -c 'mkdir -p -m 0700 $floor_dir && cat > $floor_dir/warm-up && sync && rm $floor_dir/warm-up'" <"$snapshot" &
  done
  wait

  log "$label: copy floor: ssh cat to every member at once"
  sync
  t0=$(now)
  for ip in "${IPS[@]}"; do
    on "$ip" "sudo sh -c 'mkdir -p -m 0700 $floor_dir && cat > $floor_dir/$name'" <"$snapshot" &
  done
  wait
  copy=$(since "$t0")

  log "$label: check floor: sha256sum and snapshot status of that copy on every member at once"
  sync
  t0=$(now)
  for ip in "${IPS[@]}"; do
    on "$ip" "sudo sh -c 'sha256sum $floor_dir/$name && /usr/local/bin/etcdutl snapshot status $floor_dir/$name' >/dev/null" &
  done
  wait
  check=$(since "$t0")

  log "$label: floor: etcdutl snapshot restore + start one member, by hand"
  sync
  on "${IPS[0]}" "sudo bash -s" >"$work/floor-$label.log" 2>&1 <<SH || die "the floor run failed, see $work/floor-$label.log"
set -e
d=/var/lib/etcd-bench-floor; rm -rf \$d
t0=\$(date +%s.%N)
/usr/local/bin/etcdutl snapshot restore $floor_dir/$name --name floor --data-dir \$d \
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
SH
  read -r _ restore _ start < <(tail -n 1 "$work/floor-$label.log")
  for ip in "${IPS[@]}"; do on "$ip" "sudo rm -rf $floor_dir"; done

  log "$label: playbooks/restore.yml"
  sync
  t0=$(now)
  # profile_tasks: the slowest tasks, printed below, show where the time before the stop goes.
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=12 \
    play "restore-$label.log" playbooks/restore.yml -e "etcd_restore_snapshot=$snapshot" -e "etcd_restore_confirm=$sha"
  playbook=$(since "$t0")
  echo "$label $(stat -c %s "$snapshot") $playbook $restore $start $copy $check" >>"$work/figures"
}

echo "restore benchmark: ~$SNAPSHOT_MIB MiB and ~$SMALL_MIB MiB snapshots, etcd $VERSION, 3 members, $(nproc) cores"
log "recreating the lab hosts"
lab/down.sh >/dev/null
lab/up.sh >/dev/null
trap cleanup EXIT

log "provisioning"
play provision.log playbooks/site.yml -e etcd_disk_fsync_p99_max_ms=100

log "filling ~$SMALL_MIB MiB, taking the small snapshot"
fill 1 $((SMALL_MIB * 2))
small=$(take "$work/small")
[[ -n $small ]] || die "no member took the small snapshot"
log "filling to ~$SNAPSHOT_MIB MiB, taking the big snapshot"
fill $((SMALL_MIB * 2 + 1)) $((SNAPSHOT_MIB * 2))
big=$(take "$work/big")
[[ -n $big ]] || die "no member took the big snapshot"

measure big "$big"
measure small "$small"

echo
python - "$work/figures" "$work/restore-big.log" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    label, size, *secs = line.split()
    playbook, restore, start, copy, check = map(float, secs)
    rows[label] = dict(size=int(size), playbook=playbook, restore=restore, start=start, floor=restore + start,
                       copy=copy, check=check)
b, s = rows["big"], rows["small"]
fixed = s["playbook"] - 1.5 * s["floor"] - s["copy"] - s["check"]
print("%-44s %10s %10s" % ("seconds", "%.0f MiB" % (b["size"] / 2**20), "%.0f MiB" % (s["size"] / 2**20)))
for key, title in [("restore", "floor: etcdutl snapshot restore"), ("start", "floor: start one member to /health"),
                   ("floor", "floor total"), ("copy", "copy floor: ssh cat to 3 members at once"),
                   ("check", "check floor: sha256sum + status on 3 at once"), ("playbook", "playbooks/restore.yml (wall clock)")]:
    print("%-44s %10.1f %10.1f" % (title, b[key], s[key]))
print("fixed overhead (small: playbook - 1.5 x floor - copy - check): %.1f s" % fixed)
target = 1.5 * b["floor"] + fixed + b["copy"] + b["check"]
print("target for the big one: 1.5 x %.1f + %.1f + %.1f + %.1f = %.1f s; playbook %.1f s: %s"
      % (b["floor"], fixed, b["copy"], b["check"], target, b["playbook"], "met" if b["playbook"] <= target else "NOT met"))
text = open(sys.argv[2]).read()
table = re.findall(r"- (?:'?)((?:step|stop every|move aside|start together|check revision|total)[^'\n]*)", text)
if table:
    print("the big restore's own steps (after the snapshot was pinned, copied and checked on every member):")
    for row in table:
        print("  " + row.strip())
slow = re.findall(r"^(.+?) -+ (\d+\.\d+)s$", text, re.M)
if slow:
    print("the big restore's slowest tasks (profile_tasks):")
    for name, secs in slow:
        print("  %6.1f s  %s" % (float(secs), name.strip()))
PY
