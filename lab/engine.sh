#!/usr/bin/env bash
# Ensure a working container engine (Docker) for the lab.
# Installs docker.io when dockerd is missing and starts dockerd when `docker info`
# fails. Idempotent: prints one line saying what it did (or that nothing was needed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG="$ROOT/.cache/dockerd.log"
actions=()

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] || { echo "engine.sh: docker is missing and installing it needs root" >&2; exit 1; }
  # Quiet apt: the one-line summary below is what callers want to see.
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  actions+=("installed docker.io")
fi

if ! docker info >/dev/null 2>&1; then
  # A dockerd may already be starting up (e.g. launched by a parallel caller): only
  # start our own when none is running, then wait for the API either way.
  if ! pgrep -x dockerd >/dev/null; then
    mkdir -p "$(dirname "$LOG")"
    # setsid + nohup: dockerd must outlive this script and its process group.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
    actions+=("started dockerd (pid $!, log $LOG)")
  else
    actions+=("waited for the running dockerd")
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || {
    echo "engine.sh: docker info still fails after 60 s; see $LOG" >&2
    exit 1
  }
fi

if ((${#actions[@]})); then
  msg="$(printf '%s; ' "${actions[@]}")"
  echo "engine.sh: ${msg%; }"
else
  echo "engine.sh: docker engine already running ($(docker info -f '{{.ServerVersion}}'))"
fi
