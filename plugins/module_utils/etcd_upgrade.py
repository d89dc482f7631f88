# -*- coding: utf-8 -*-
"""Upgrade-path rules: which version change a rolling upgrade may make, and why not.

Upstream's rules (etcd website, content/en/docs/v3.6/upgrades/):
- upgrading-etcd.md: patch upgrades, or one minor version at a time ("Upgrades that skip a
  minor version are not supported and will likely fail").
- upgrade_3_5.md: "If your cluster enables auth, rolling upgrade from 3.4 or older version
  isn't supported because 3.5 changes a format of WAL entries related to auth" (etcd PR 11943).
- upgrade_3_6.md: the minimum 3.5 patch before 3.6 has been raised over time: 3.5.20
  (2025-05, issue 19557), 3.5.24 (2025-11, issue 20793), 3.5.26 (2025-12, zombie members)
  and 3.5.32 (2026-08: "Patch releases 3.5.24 through 3.5.32 fix several potential upgrade
  blockers"). The newest requirement is the one kept here.
- Old binaries cannot read newer data: swapping binaries back is no downgrade. Only 3.6 has
  a supported downgrade (`etcdctl downgrade validate/enable`, downgrade_3_6.md).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import collect, parse_endpoint_status
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import Version, parse_version

MIN_35_PATCH_FOR_36 = 32


def upgrade_kind(current: str, target: str) -> str:
    """'none', 'patch', 'minor' (one step up) or 'refused' (anything else)."""
    cur, tgt = parse_version(current), parse_version(target)
    if cur == tgt:
        return "none"
    if (cur.major, cur.minor) == (tgt.major, tgt.minor):
        return "patch" if tgt.patch > cur.patch else "refused"
    if tgt.major == cur.major and tgt.minor == cur.minor + 1:
        return "minor"
    return "refused"


def path_problems(current_versions: Sequence[str], target: str, auth_enabled: bool) -> List[str]:
    """Why a rolling upgrade from the members' versions to target is refused (empty: allowed).

    current_versions: every member's running version. A re-run after a partial upgrade sees
    some members on the target already: those are skipped, the others must form one step.
    """
    tgt = parse_version(target)
    problems: List[str] = []
    pending = sorted({str(v) for v in current_versions if str(v) != str(tgt)}, key=parse_version)
    if len(pending) > 1:
        problems.append(
            "members run different versions (%s) besides the target %s: finish or undo the earlier upgrade "
            "first, so that every member starts from one version" % (", ".join(pending), tgt))
        return problems
    if not pending:
        return problems
    cur: Version = parse_version(pending[0])
    kind = upgrade_kind(str(cur), str(tgt))
    if kind == "refused":
        if (tgt.major, tgt.minor, tgt.patch) < (cur.major, cur.minor, cur.patch):
            how = ("3.6 supports a downgrade to 3.5 with etcdctl downgrade validate/enable (upstream "
                   "downgrade_3_6.md); otherwise restore the pre-upgrade snapshot" if cur.minor_line == "3.6"
                   else "older binaries cannot read newer data: restore the snapshot taken before the upgrade instead")
            problems.append("%s -> %s is a downgrade, which this playbook does not do: %s" % (cur, tgt, how))
        else:
            step = "%d.%d" % (cur.major, cur.minor + 1)
            problems.append(
                "%s -> %s skips a minor version: upstream supports one minor step at a time; upgrade to the "
                "newest %s release first, then to %s" % (cur, tgt, step, tgt))
        return problems
    if kind == "minor" and cur.minor_line == "3.4" and auth_enabled:
        problems.append(
            "3.4 -> 3.5 with authentication on is not supported upstream (3.5 changed the WAL format of auth "
            "entries, etcd PR 11943): turn auth off (etcd_rbac_enabled: false, site.yml --tags rbac), upgrade, "
            "then turn it on again")
    if kind == "minor" and cur.minor_line == "3.5" and cur.patch < MIN_35_PATCH_FOR_36:
        problems.append(
            "3.5.%d -> %s: upstream requires 3.5.%d or newer before 3.6 (upgrade_3_6.md; earlier 3.5 releases "
            "can leave membership that 3.6 refuses): upgrade to 3.5.%d+ first, wait until every member is "
            "healthy, then to %s" % (cur.patch, tgt, MIN_35_PATCH_FOR_36, MIN_35_PATCH_FOR_36, tgt))
    return problems


def removed_keys(config: Mapping[str, object], target_keys: Iterable[str]) -> List[str]:
    """Top-level and transport-security keys of a rendered configuration the target does not know."""
    known = set(target_keys)
    missing = []
    for key, value in config.items():
        if key not in known:
            missing.append(key)
        if key.endswith("-transport-security") and isinstance(value, Mapping):
            missing.extend("%s.%s" % (key, inner) for inner in value if inner not in known)
    return sorted(missing)


# Configuration keys a minor release removed (etcd refuses to start with an unknown key).
# Taken from the release's own key lists (tests/reference/etcd-flags/config-file-keys-*.txt,
# checked by the unit tests): 3.4.23 -> 3.5.33 and 3.5.33 -> 3.6.0.
REMOVED_KEYS = {
    "3.5": ("debug", "experimental-backend-bbolt-freelist-type", "log-output", "log-package-levels"),
    "3.6": ("enable-v2", "experimental-enable-v2v3"),
}


def extra_key_problems(extra: Mapping[str, object], target: str) -> List[str]:
    """etcd_config_extra keys the target release removed (the roles render only keys it knows)."""
    gone = REMOVED_KEYS.get(parse_version(target).minor_line, ())
    found = sorted(k for k in (extra or {}) if k in gone)
    if not found:
        return []
    return ["etcd_config_extra has %s, which etcd %s removed (it would not start): drop %s from "
            "etcd_config_extra before upgrading" % (", ".join(found), target, "them" if len(found) > 1 else "it")]


def plan(hosts: Sequence[str], names: Mapping[str, str], status: Mapping[str, Any], target: str) -> Dict[str, Any]:
    """Who is upgraded in which order: followers first, the leader last, members on the target skipped.

    hosts: inventory order; names: host -> member name; status: etcd_status's status.
    """
    by_name = {m.get("name"): m for m in status.get("members") or []}
    leader = (status.get("leader") or {}).get("name")
    leader_host = next((h for h in hosts if names.get(h) == leader), "")
    done = [h for h in hosts if str((by_name.get(names.get(h)) or {}).get("version")) == str(target)]
    todo = [h for h in hosts if h not in done]
    order = [h for h in todo if h != leader_host] + [h for h in todo if h == leader_host]
    voters = int(status.get("voting_members") or 0)
    quorum = int(status.get("quorum") or 0)
    return {
        "order": order,
        "skipped": done,
        "leader": leader_host,
        # The leader hands over only once a member runs the target: the first follower done.
        "leader_moves": bool(leader_host) and leader_host in order and len(hosts) > 1,
        "quorum_margin": max(voters - quorum, 0),
        "voters": voters,
        "quorum": quorum,
    }


def member_check(status: Mapping[str, Any], name: str, applied_before: int, version: str) -> List[str]:
    """What still keeps a just-restarted member from counting as done (empty: done).

    It must be healthy, have applied at least every entry the leader had applied before it
    went down, run ``version`` (when given), and the cluster must have a leader.
    """
    member = next((m for m in status.get("members") or [] if m.get("name") == name), None)
    if member is None:
        return ["%s is not in the member list" % name]
    failed = []
    if not member.get("healthy"):
        failed.append("%s is not healthy (%s)" % (name, "; ".join(member.get("errors") or ["no answer"])))
    applied = int(member.get("raft_applied_index") or 0)
    if applied < int(applied_before or 0):
        failed.append("%s has applied index %d, behind the %d the leader had applied before it restarted"
                      % (name, applied, int(applied_before or 0)))
    if version and member.get("reachable") and str(member.get("version")) != str(version):
        failed.append("%s reports version %s, not %s" % (name, member.get("version") or "?", version))
    if not status.get("leader"):
        failed.append("the cluster has no leader")
    return failed


def rollback_allowed(previous: str, target: str, cluster_version: str, last: bool = False) -> bool:
    """Whether a member that failed on the target may go back to the previous binary.

    A patch release keeps the data format. Across a minor step, a member's data stays in the
    old format while the cluster version is still the old minor (the cluster version moves up
    only once every member runs the new release; etcd's downgrade relies on the same rule).
    The last member (every other one on the target) may already have moved it up, and an
    unknown cluster version proves nothing: no roll-back then.
    """
    prev, tgt = parse_version(previous), parse_version(target)
    if prev.minor_line == tgt.minor_line:
        return True
    return not last and str(cluster_version or "").startswith(prev.minor_line + ".")


def wait_for_member(ctl: Any, endpoints: Sequence[str], name: str, applied_before: int, version: str,
                    timeout: float, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep, interval: float = 0.2) -> Dict[str, Any]:
    """Poll until member_check passes or timeout: the restarted member's turn is over.

    Between full status reads, one `endpoint status` over every endpoint (a single etcdctl
    call) shows whether any member knows a leader, so the longest stretch without one is
    measured to a fraction of a second: no leader means no write can commit.
    Returns {done, seconds, longest_leaderless_seconds, failed, status}.
    """
    start = clock()
    leaderless_since: Optional[float] = None
    longest = 0.0
    failed: List[str] = ["not checked yet"]
    status: Dict[str, Any] = {}
    while True:
        now = clock()
        _rc, out, _err = ctl(list(endpoints), "endpoint", "status", "-w", "json")
        led = any(s.leader for s in parse_endpoint_status(out))
        if led and leaderless_since is not None:
            longest = max(longest, now - leaderless_since)
            leaderless_since = None
        elif not led and leaderless_since is None:
            leaderless_since = now
        if led:
            status = collect(ctl, endpoints).to_dict()
            failed = member_check(status, name, applied_before, version)
            if not failed:
                break
        else:
            failed = ["no member knows a leader (no write can commit)"]
        if clock() - start >= timeout:
            break
        sleep(interval)
    end = clock()
    if leaderless_since is not None:
        longest = max(longest, end - leaderless_since)
    return {"done": not failed, "seconds": round(end - start, 2),
            "longest_leaderless_seconds": round(longest, 2), "failed": failed, "status": status}


def membership_problems(status: Mapping[str, Any], names: Sequence[str], allow_downtime: bool = False) -> List[str]:
    """An upgrade must reach every member, and keep quorum while one of them restarts."""
    problems = []
    listed = [str(m.get("name") or m.get("id_hex")) for m in status.get("members") or []]
    strangers = [n for n in listed if n not in names]
    if strangers:
        problems.append("the cluster has members the inventory does not list (%s): add their hosts to the group, "
                        "or the upgrade would leave them on the old release" % ", ".join(strangers))
    voters = int(status.get("voting_members") or 0)
    if voters and voters - int(status.get("quorum") or 0) < 1 and not allow_downtime:
        problems.append("%d voting member(s) have no quorum margin: the cluster stops serving while each one "
                        "restarts; grow it to 3 or 5 members first, or accept the downtime with "
                        "etcd_upgrade_allow_downtime: true" % voters)
    return problems
