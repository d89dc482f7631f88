#!/usr/bin/env bash
# Run make targets in order, timing each; print a table of the times at the end, also when a
# stage fails (the run stops there and exits with its status). A failed stage's test
# failures are repeated just above the table: CI logs are often read from the end.
#   tests/stages.sh setup lint unit ...
set -uo pipefail
make=${MAKE:-make}
logs=.cache/stages
mkdir -p "$logs"
names=() secs=() results=()
rc=0
for target in "$@"; do
  start=$(date +%s)
  echo "=== stage $target ($(date +%T))"
  $make --no-print-directory "$target" 2>&1 | tee "$logs/$target.log"
  status=${PIPESTATUS[0]}
  names+=("$target") secs+=($(($(date +%s) - start)))
  if ((status != 0)); then results+=("FAILED ($status)"); rc=$status; break; fi
  results+=("ok")
done
if ((rc != 0)); then
  echo
  echo "=== why ${names[-1]} failed (from $logs/${names[-1]}.log)"
  # pytest's summary and assertion lines, ansible-test's errors, ansible's failed tasks; no
  # colours, and without the '│ ' margin molecule puts before the output of its steps.
  sed 's/\x1b\[[0-9;]*m//g' "$logs/${names[-1]}.log" |
    sed -E 's/^[[:space:]]*│ ?//' |
    grep -E '^(FAILED|ERROR) |^ERROR: |^E +[A-Za-z]|^fatal: |^failed: |FAILED! =>| (FAILED|ERROR)( |$)|^INTERNALERROR|^=+ .*(failed|error|no tests ran)|^(usage|pytest): ' |
    tail -n 60
fi
total=0
printf '\n%-20s %8s  %s\n' STAGE TIME RESULT
for i in "${!names[@]}"; do
  total=$((total + secs[i]))
  printf '%-20s %5d:%02d  %s\n' "${names[i]}" $((secs[i] / 60)) $((secs[i] % 60)) "${results[i]}"
done
printf '%-20s %5d:%02d  %s\n' total $((total / 60)) $((total % 60)) "$( ((rc == 0)) && echo ok || echo FAILED)"
exit "$rc"
