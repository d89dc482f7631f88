"""Shared helpers for the restore scenario: real members, real etcdctl, no mocks."""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "common"))

import harness  # noqa: E402

MEMBERS = {"r1": "172.31.244.11", "r2": "172.31.244.12", "r3": "172.31.244.13"}
DRILL = "172.31.244.21"  # rd1, group etcd_drill: the scratch cluster runs there
harness.configure(MEMBERS, Path(__file__).resolve().parents[1] / "inventory", others=[DRILL])


def etcdctl(member: str, args: str, check: bool = True):
    """etcdctl as admin against this member's own endpoint only."""
    return harness.ssh(member, "sudo -i env -u ETCDCTL_ENDPOINTS etcdctl --endpoints=https://%s:2379 %s"
                       % (MEMBERS[member], args), check=check)


def keys(member: str, prefix: str) -> Dict[str, str]:
    """key -> value under prefix, read from this member's own copy (serializable)."""
    answer = json.loads(etcdctl(member, "get %s --prefix --consistency=s -w json" % prefix).stdout)
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
            for kv in answer.get("kvs", [])}
