# -*- coding: utf-8 -*-
"""Full-cluster restore rules: which snapshot may be restored, and how, per etcd version.

Upstream (etcd website, op-guide/recovery.md; etcd-operations.md section 3 here):
- every member restores from the SAME snapshot, with the same --initial-cluster and a NEW
  --initial-cluster-token, so no member of the old cluster can join the restored one;
- 3.4 restores with `etcdctl snapshot restore`, 3.5+ with `etcdutl snapshot restore`
  (3.6 removed the etcdctl form);
- --bump-revision/--mark-compacted exist from 3.4.27 and 3.5.10 (and in 3.6): Kubernetes
  informers must see every revision they cached as compacted, or they keep stale caches.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_backup import parse_snapshot_name
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import at_least, parse_version

# recovery.md: 1'000'000'000 revisions cover a week-old snapshot below 1500 writes/s.
DEFAULT_BUMP = 1_000_000_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def restore_tool(version: str) -> Dict[str, Any]:
    """{'binary': 'etcdctl'|'etcdutl', 'bump': whether --bump-revision/--mark-compacted exist}."""
    v = parse_version(version)
    if v.minor_line == "3.4":
        return {"binary": "etcdctl", "bump": v.patch >= 27}
    return {"binary": "etcdutl", "bump": at_least(v, "3.5", 10)}


def restore_token(cluster: str, sha256: str) -> str:
    """The restored cluster's token: new for every snapshot, the same on a re-run of one restore."""
    return "%s-restore-%s" % (cluster, sha256[:16])


def restore_argv(version: str, bin_dir: str, snapshot: str, member: Mapping[str, str], initial_cluster: str,
                 token: str, bump_revision: int) -> List[str]:
    """The restore command for one member (member: name, data_dir, wal_dir ('' = none), peer_url)."""
    tool = restore_tool(version)
    argv = ["%s/%s" % (bin_dir, tool["binary"]), "snapshot", "restore", snapshot,
            "--name", member["name"], "--data-dir", member["data_dir"],
            "--initial-cluster", initial_cluster, "--initial-cluster-token", token,
            "--initial-advertise-peer-urls", member["peer_url"]]
    if member.get("wal_dir"):
        argv += ["--wal-dir", member["wal_dir"]]
    if bump_revision > 0 and tool["bump"]:
        argv += ["--bump-revision", str(bump_revision), "--mark-compacted"]
    return argv


def snapshot_problems(name: str, sha256_file: Optional[str], sha256: str, cluster: str,
                      status: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Why a snapshot must not be restored (empty: it may).

    name: the file name; sha256_file: the content of its .sha256 (None when missing);
    sha256: the file's SHA-256 as computed now; status: `snapshot status -w json` (hash,
    revision, totalKey) when it was read.
    """
    problems = []
    parsed = parse_snapshot_name(name)
    if parsed is None:
        problems.append("%s is not named as the backup job names snapshots (etcd-<cluster>-<time>-r<revision>.db): "
                        "restore only what the backup job took and verified" % name)
    elif parse_snapshot_name(name, cluster) is None:
        problems.append("%s is a snapshot of another cluster, not of %s: name the right file, or set "
                        "etcd_cluster_name if this inventory is that cluster" % (name, cluster))
    if sha256_file is None:
        problems.append("%s has no .sha256 beside it: only snapshots the backup job verified are restored" % name)
    else:
        recorded = (sha256_file.split() or [""])[0].lower()
        if not _SHA256.match(recorded):
            problems.append("%s.sha256 does not hold a SHA-256: take the snapshot again" % name)
        elif recorded != sha256:
            problems.append("%s has SHA-256 %s but its .sha256 says %s: the file changed after the backup job "
                            "verified it; use another snapshot" % (name, sha256, recorded))
    if status is not None and int(status.get("totalKey") or 0) <= 0:
        problems.append("%s holds no keys according to snapshot status: use another snapshot" % name)
    return problems


def copies_problems(sha256: str, copies: Mapping[str, str]) -> List[str]:
    """Every member's copy must have the pinned SHA-256 (host -> SHA-256 seen there)."""
    return ["the copy on %s has SHA-256 %s, not the pinned %s: copy it again (nothing was touched)"
            % (host, seen or "(missing)", sha256) for host, seen in sorted(copies.items()) if seen != sha256]


def aside_path(path: str, stamp: str) -> str:
    """Where a member's old data (or WAL) folder goes: beside it, dated, on the same volume."""
    return "%s.before-restore-%s" % (path.rstrip("/"), stamp)


def plan(hosts: Sequence[str], members: Mapping[str, Mapping[str, str]], snapshot: Mapping[str, Any],
         version: str, bump_revision: int) -> Dict[str, Any]:
    """What a restore will do, for --check and the log: one line per member, in one order."""
    tool = restore_tool(version)
    bump = bump_revision if tool["bump"] else 0
    steps = []
    for host in hosts:
        m = members[host]
        steps.append("%s: stop etcd; move %s%s aside (dated, same volume); %s snapshot restore as %s; start with "
                     "the others" % (host, m["data_dir"], (" and " + m["wal_dir"]) if m.get("wal_dir") else "",
                                     tool["binary"], m["name"]))
    warnings = []
    if bump_revision > 0 and not tool["bump"]:
        warnings.append("etcd %s cannot bump the revision on restore (needs 3.4.27+ or 3.5.10+): Kubernetes "
                        "watchers may keep stale caches; restart kube-apiserver after the restore" % version)
    return {"snapshot": dict(snapshot), "bump_revision": bump, "tool": tool["binary"], "steps": steps,
            "warnings": warnings}
