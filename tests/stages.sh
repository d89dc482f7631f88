#!/usr/bin/env bash
# Run make targets in order, timing each; print a table of the times at the end, also when a
# stage fails (the run stops there and exits with its status).
#   tests/stages.sh setup lint unit ...
set -uo pipefail
make=${MAKE:-make}
names=() secs=() results=()
rc=0
for target in "$@"; do
  start=$(date +%s)
  echo "=== stage $target ($(date +%T))"
  $make --no-print-directory "$target"
  status=$?
  names+=("$target") secs+=($(($(date +%s) - start)))
  if ((status != 0)); then results+=("FAILED ($status)"); rc=$status; break; fi
  results+=("ok")
done
total=0
printf '\n%-20s %8s  %s\n' STAGE TIME RESULT
for i in "${!names[@]}"; do
  total=$((total + secs[i]))
  printf '%-20s %5d:%02d  %s\n' "${names[i]}" $((secs[i] / 60)) $((secs[i] % 60)) "${results[i]}"
done
printf '%-20s %5d:%02d  %s\n' total $((total / 60)) $((total % 60)) "$( ((rc == 0)) && echo ok || echo FAILED)"
exit "$rc"
