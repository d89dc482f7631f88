#!/usr/bin/env bash
# Benchmark: a 3-member lab cluster whose members are "in different AZs" (30-50 ms RTT
# between them) on a bad link, under a steady write load, first with etcd's default Raft
# timeouts, then with the ones playbooks/measure-rtt.yml computes from measurements of that
# link, in the same run, on the same cluster. Prints both rows side by side (timeouts
# used, leader changes, write errors, p50/p99/max latency); exits 1 if the tuned cluster
# changed leader, 2 if the default one did not (the run showed no difference).
#
# This kernel has no tc netem, so the link comes from bench/latency_relay.py: one relay
# per member on the docker host (172.31.240.1:1238N -> 172.31.240.1N:2380), holding each
# chunk 20 +- 5 ms per direction. Members advertise the relay as their peer URL, so every
# peer connection crosses it; TLS passes through untouched. Clients reach members directly.
#
# The bad link: what makes Raft change leader is not 40 ms but silence. A burst of loss
# makes TCP retransmit with a doubling timeout and hold everything behind the lost segment
# for hundreds of milliseconds to seconds. The relay stalls each route and direction like
# that (see its --stall-* flags): with STALL_PROBABILITY per STALL_EVERY_MS, for
# STALL_MS..STALL_MAX_MS. It is on during both soaks (from the same seed each time, so both
# meet the same stalls at the same offsets) and the measurement (which goes on from the
# first soak, so it meets other stalls of the same kind), and off while Ansible provisions
# and restarts members, which is the harness's business, not the test's.
#
# Env: SOAK_SECONDS (default 300)  length of each soak
#      WRITE_RATE   (default 50)   writes per second, round-robin over the members
#      DELAY_MS     (default 40)   added round-trip time;  JITTER_MS (default 10): +- half of it per direction
#      BAD_LINK     (default 1)    0: no stalls, only the delay (the two rows then match: 100/1000 fits 40 ms)
#      STALL_PROBABILITY (0.02), STALL_EVERY_MS (1000), STALL_MS (1200), STALL_MAX_MS (2500),
#      STALL_DIRECTION (both), SEED (1): the bad link
#      MEASURE_SECONDS (default 120) how long measure-rtt.yml probes the bad link (etcd_rtt_duration)
#      ETCD_VERSION (default 3.5.30)
#      KEEP_LAB=1   leave the benchmark cluster running at the end (default: recreate fresh hosts)
# The lab hosts are recreated fresh at the start and at the end, like bench/provision.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export PATH="$PWD/.venv/bin:$PATH"

SOAK_SECONDS=${SOAK_SECONDS:-300}
WRITE_RATE=${WRITE_RATE:-50}
DELAY_MS=${DELAY_MS:-40}
JITTER_MS=${JITTER_MS:-10}
BAD_LINK=${BAD_LINK:-1}
STALL_PROBABILITY=${STALL_PROBABILITY:-0.02}
STALL_EVERY_MS=${STALL_EVERY_MS:-1000}
STALL_MS=${STALL_MS:-1200}
STALL_MAX_MS=${STALL_MAX_MS:-2500}
STALL_DIRECTION=${STALL_DIRECTION:-both}
SEED=${SEED:-1}
MEASURE_SECONDS=${MEASURE_SECONDS:-120}
HOST_IP=172.31.240.1            # the docker host on the lab bridge; containers reach it
NAMES=(etcd-lab-1 etcd-lab-2 etcd-lab-3)
IPS=(172.31.240.11 172.31.240.12 172.31.240.13)
RELAY_PORTS=(12381 12382 12383)

work="$PWD/.cache/bench/cross-az-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$work"
pki="$work/pki"
relay_pid=""

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
die() { echo "cross_az.sh: $*" >&2; exit 1; }

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n $relay_pid ]] && kill -0 "$relay_pid" 2>/dev/null; then
    kill -TERM "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
  fi
  if [[ ${KEEP_LAB:-0} != 1 ]]; then
    # The lab now carries this benchmark's throwaway CA and relay peer URLs: recreate the
    # hosts so `make lab` starts clean. The benchmark's own files stay in $work.
    lab/down.sh >/dev/null 2>&1 || true
    lab/up.sh >/dev/null 2>&1 || echo "cross_az.sh: lab/up.sh failed; run it again" >&2
  fi
  echo "logs: $work"
  exit "$rc"
}

# Inventory overlay: each member advertises its relay to its peers. The lab inventory comes
# first, so inventory_dir (and the lab's group_vars) still apply.
overlay="$work/relays.yml"
{
  echo "---"
  echo "all:"
  echo "  hosts:"
  for i in 0 1 2; do
    echo "    ${NAMES[$i]}:"
    echo "      etcd_advertise_peer_url: https://$HOST_IP:${RELAY_PORTS[$i]}"
  done
} >"$overlay"
inv=(-i inventories/lab/hosts.yml -i "$overlay")
# The load generator speaks etcd's JSON gateway, which ignores client-certificate CNs, so
# this throwaway cluster runs with auth off; raft timing does not depend on it.
extra=(-e "etcd_pki_controller_dir=$pki" -e "etcd_controller_cache_dir=$work/releases"
  -e '{"etcd_pki_extra_sans": ["IP:'"$HOST_IP"'"]}' -e '{"etcd_rbac_enabled": false}')
endpoints=$(printf 'https://%s:2379,' "${IPS[@]}")
endpoints=${endpoints%,}
tls=(--cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key")

provision() {  # provision LABEL HEARTBEAT ELECTION: site.yml with these timeouts
  local label=$1 log="$work/provision-$1.log" start end changed restarts
  start=$(date +%s)
  # The timeouts are given, so the preflight need not measure (JSON: a real false).
  ansible-playbook "${inv[@]}" playbooks/site.yml "${extra[@]}" -e '{"etcd_rtt_measure": false}' \
    -e "etcd_heartbeat_interval=$2" -e "etcd_election_timeout=$3" >"$log" 2>&1 \
    || { tail -n 40 "$log" >&2; die "provisioning ($label) failed, see $log"; }
  end=$(date +%s)
  changed=$(grep -Eo 'changed=[0-9]+' "$log" | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
  restarts=$(grep -cE '^(TASK|RUNNING HANDLER) \[etcd_member : Restart etcd on ' "$log" || true)
  log "provisioned ($label, heartbeat $2 ms, election $3 ms) in $((end - start)) s, changed=$changed, members restarted one at a time: $restarts"
  # What the members' configuration files say now (the soak must run with these).
  ansible "${inv[@]}" etcd -b -o -m ansible.builtin.command \
    -a "grep -E '^(heartbeat-interval|election-timeout):' /etc/etcd/etcd.conf.yml" 2>/dev/null \
    | sort | sed -E 's/ \| CHANGED \| rc=0 \| \(stdout\)/:/; s/\\n/, /g; s/^/  /'
}

bad_link() {  # bad_link on|off: the relay's stalls (SIGUSR1 starts them again from the seed)
  [[ $BAD_LINK == 1 ]] || return 0
  if [[ $1 == on ]]; then kill -USR1 "$relay_pid"; else kill -USR2 "$relay_pid"; fi
  log "bad link $1"
}

soak() {  # soak LABEL HEARTBEAT ELECTION: the bad link on, from the seed (it stays on after)
  log "soak $1: $SOAK_SECONDS s at $WRITE_RATE writes/s"
  bad_link on
  python bench/cross_az_load.py soak "${tls[@]}" --endpoints "$endpoints" --label "$1" \
    --heartbeat "$2" --election "$3" --rate "$WRITE_RATE" --seconds "$SOAK_SECONDS" --out "$work/soak-$1.json"
}

link="+${DELAY_MS} +- $((JITTER_MS / 2)) ms RTT"
relay_link=(--delay-ms "$DELAY_MS" --jitter-ms "$JITTER_MS" --seed "$SEED")
if [[ $BAD_LINK == 1 ]]; then
  link+=", stalls of $STALL_MS-$STALL_MAX_MS ms ($STALL_DIRECTION) with p=$STALL_PROBABILITY per $STALL_EVERY_MS ms"
  relay_link+=(--stall-probability "$STALL_PROBABILITY" --stall-every-ms "$STALL_EVERY_MS"
    --stall-ms "$STALL_MS" --stall-max-ms "$STALL_MAX_MS" --stall-direction "$STALL_DIRECTION" --stalls-paused)
fi
echo "cross-AZ benchmark: etcd ${ETCD_VERSION:-3.5.30}, 3 members, $link between members," \
  "$WRITE_RATE writes/s for $SOAK_SECONDS s per soak, $(nproc) cores"
log "recreating the lab hosts"
lab/down.sh >/dev/null
lab/up.sh >/dev/null
trap cleanup EXIT

# Relays: bounded to the whole run (two soaks, the measurement, generous provisioning time).
relay_args=()
for i in 0 1 2; do
  relay_args+=(--listen "$HOST_IP:${RELAY_PORTS[$i]}" --target "${IPS[$i]}:2380")
done
python bench/latency_relay.py "${relay_args[@]}" "${relay_link[@]}" \
  --max-seconds $((2 * SOAK_SECONDS + MEASURE_SECONDS + 2400)) 2>"$work/relay.log" &
relay_pid=$!
for _ in $(seq 50); do
  [[ $(grep -c 'listening' "$work/relay.log" 2>/dev/null) -ge 3 ]] && break
  kill -0 "$relay_pid" 2>/dev/null || { cat "$work/relay.log" >&2; die "the relay did not start"; }
  sleep 0.2
done
[[ $(grep -c 'listening' "$work/relay.log") -ge 3 ]] || die "the relay is not listening"
log "relays up: $(printf '%s:%s->%s:2380 ' "$HOST_IP" "${RELAY_PORTS[0]}" "${IPS[0]}")(x3)"

# 1. etcd's defaults.
provision default 100 1000
log "peer URLs the members advertise:"
python bench/cross_az_load.py peers "${tls[@]}" --endpoint "https://${IPS[0]}:2379" | sed 's/^/  /'
soak default 100 1000

# 2. Measure the same link, compute, re-apply (a rolling restart when the values change), soak again.
# The bad link stays on from the soak: the probe meets stalls of its own, not a replay of
# the ones the soaks meet.
log "measuring member-to-member RTT for $MEASURE_SECONDS s (playbooks/measure-rtt.yml)"
ANSIBLE_STDOUT_CALLBACK=ansible.posix.json ansible-playbook "${inv[@]}" playbooks/measure-rtt.yml \
  -e "{\"etcd_rtt_duration\": $MEASURE_SECONDS}" >"$work/measure-rtt.json" 2>"$work/measure-rtt.err" \
  || { python bench/cross_az_load.py tuning "$work/measure-rtt.json" --out /dev/null || true; die "measure-rtt.yml failed"; }
bad_link off
python bench/cross_az_load.py tuning "$work/measure-rtt.json" --out "$work/tuned.txt" | sed 's/^/  /'
read -r tuned_hb tuned_el <"$work/tuned.txt"
log "computed: heartbeat $tuned_hb ms, election $tuned_el ms"
provision tuned "$tuned_hb" "$tuned_el"
sleep 5
soak tuned "$tuned_hb" "$tuned_el"
bad_link off

# 3. Side by side.
kill -TERM "$relay_pid" 2>/dev/null || true
wait "$relay_pid" 2>/dev/null || true
relay_pid=""
echo
python - "$work/relay.log" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
if lines:
    for name, r in json.loads(lines[-1])["routes"].items():
        stalls = "".join(", %s: %d stalls %.1f s" % (d, s["stalls"], s["stalled_ms"] / 1000.0)
                         for d, s in sorted(r.get("stalls", {}).items()))
        print("relay %-40s %5d connections, %9d bytes up, %9d bytes down%s" % (
            name, r["connections"], r["bytes_up"], r["bytes_down"], stalls))
EOF
echo
expect=()
if [[ $BAD_LINK == 1 ]]; then expect=(--expect-difference); fi
set +e
python bench/cross_az_load.py report "${expect[@]}" "$work/soak-default.json" "$work/soak-tuned.json"
verdict=$?
set -e
exit "$verdict"
