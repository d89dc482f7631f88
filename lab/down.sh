#!/usr/bin/env bash
# Remove the lab hosts etcd-lab-1..3, etcd-lab-mon, etcd-lab-drill and their network. Missing ones are ignored.
# Keeps .lab/ (SSH key, CA) and the image, so lab/up.sh brings a fresh lab back fast.
#
# Env: LAB_NETWORK  docker network name (default etcd-lab)
set -euo pipefail

NETWORK="${LAB_NETWORK:-etcd-lab}"
HOSTS=(etcd-lab-1 etcd-lab-2 etcd-lab-3 etcd-lab-mon etcd-lab-drill)

for h in "${HOSTS[@]}"; do
  if docker container inspect "$h" >/dev/null 2>&1; then
    docker rm -f "$h" >/dev/null
    echo "down.sh: removed $h"
  fi
done
if docker network inspect "$NETWORK" >/dev/null 2>&1; then
  # Fails (and says why) if something else still uses the network.
  docker network rm "$NETWORK" >/dev/null
  echo "down.sh: removed network $NETWORK"
fi
echo "down.sh: lab is down"
