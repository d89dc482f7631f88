# -*- coding: utf-8 -*-
"""Filters for full-cluster restores; the rules live in module_utils/etcd_restore.py.

    info | etcd_restore_snapshot_problems(cluster)      -> refusals of the pinned snapshot
    copies | etcd_restore_copies_problems(sha256)        -> members whose copy differs
    confirm | etcd_restore_confirm_problems(sha256)      -> refusal unless the operator named it
    cluster | etcd_restore_token(sha256)                 -> the restored cluster's token
    hosts | etcd_restore_plan(members, snapshot, version, bump) -> steps and warnings
    names | etcd_restore_latest(cluster)                 -> newest verified snapshot name
    readings | etcd_restore_verify_problems(revision, keys) -> members that do not match
    version | etcd_restore_bump(bump)                    -> revisions this version will add
    [step, t] pair with the previous | etcd_restore_step_row -> one line of the step table
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_restore


def etcd_restore_snapshot_problems(info: Mapping[str, Any], cluster: str) -> List[str]:
    """info: etcd_snapshot_info's result for the controller's copy."""
    name = os.path.basename(str(info["path"]))
    readable = info.get("readable", True)
    problems = etcd_restore.snapshot_problems(name, info.get("sha256_file"), str(info["sha256"]), str(cluster),
                                              {"totalKey": info.get("live_keys") or 0} if readable else None)
    if not readable:
        problems.append("%s does not read as an etcd snapshot (%s): use another snapshot" % (name, info.get("error")))
    elif not info.get("trailer_ok"):
        problems.append("%s has no valid SHA-256 trailer (it was not written by snapshot save, or is truncated): "
                        "use another snapshot" % os.path.basename(str(info["path"])))
    return problems


def etcd_restore_copies_problems(copies: Mapping[str, Any], sha256: str) -> List[str]:
    return etcd_restore.copies_problems(str(sha256), {str(h): str(v or "") for h, v in copies.items()})


def etcd_restore_confirm_problems(confirm: Any, sha256: str) -> List[str]:
    return etcd_restore.confirm_problems(str(confirm or ""), str(sha256))


def etcd_restore_token(cluster: str, sha256: str) -> str:
    return etcd_restore.restore_token(str(cluster), str(sha256))


def etcd_restore_plan(hosts: Sequence[str], members: Mapping[str, Mapping[str, str]], snapshot: Mapping[str, Any],
                      version: str, bump_revision: Any) -> Dict[str, Any]:
    return etcd_restore.plan(list(hosts), members, snapshot, str(version), int(bump_revision or 0))


def etcd_restore_latest(names: Sequence[str], cluster: str) -> Optional[str]:
    return etcd_restore.latest_verified([str(n) for n in names], str(cluster))


def etcd_restore_verify_problems(readings: Mapping[str, Mapping[str, Any]], revision: Any, keys: Any) -> List[str]:
    return etcd_restore.verify_problems(int(revision), int(keys), readings)


def etcd_restore_bump(version: Any, bump_revision: Any) -> int:
    return int(bump_revision or 0) if etcd_restore.restore_tool(str(version))["bump"] else 0


_STEPS = {"stopped": "stop every member", "restored": "move aside and restore", "quorum": "start together, quorum",
          "verified": "check revision, hashkv, keys"}


def etcd_restore_step_row(pair: Sequence[Sequence[Any]]) -> str:
    """([step, time], [previous step, time]) -> 'step  seconds'."""
    (step, t), (_prev, t0) = pair
    return "%-28s %8.1f" % (_STEPS.get(str(step), str(step)), float(t) - float(t0))


class FilterModule:
    def filters(self) -> Dict[str, Any]:
        return {f.__name__: f for f in (
            etcd_restore_snapshot_problems, etcd_restore_copies_problems, etcd_restore_confirm_problems,
            etcd_restore_token, etcd_restore_plan, etcd_restore_latest, etcd_restore_verify_problems,
            etcd_restore_bump, etcd_restore_step_row)}
