#!/usr/bin/env bash
# Benchmark: cold provisioning of the 3-member lab, then an idempotent re-run.
# Hosts are recreated fresh and the controller starts with an empty release cache and
# no CA, so "cold" means everything. Prints seconds and the changed count of each run.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
export PATH="$PWD/.venv/bin:$PATH"

work="$PWD/.cache/bench/provision-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$work"
extra=(-e "etcd_pki_controller_dir=$work/pki" -e "etcd_controller_cache_dir=$work/releases")

lab/down.sh >/dev/null
lab/up.sh >/dev/null

run() {  # run LABEL: time one provisioning run, print seconds and the changed total
  local label=$1 log="$work/$1.log" start end changed
  start=$(date +%s.%N)
  ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml "${extra[@]}" >"$log" 2>&1 \
    || { echo "$label run failed, see $log" >&2; tail -n 30 "$log" >&2; exit 1; }
  end=$(date +%s.%N)
  changed=$(grep -Eo 'changed=[0-9]+' "$log" | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
  printf '%-8s %6.1f s   changed=%s\n' "$label" "$(awk "BEGIN {print $end - $start}")" "$changed"
}

echo "etcd ${ETCD_VERSION:-3.5.30}, 3 members over SSH, $(nproc) cores"
run cold
run rerun
# The lab now carries this benchmark's throwaway CA: recreate the hosts so `make lab`
# starts clean. The benchmark's own files stay in $work for inspection.
lab/down.sh >/dev/null
lab/up.sh >/dev/null
echo "logs: $work"
