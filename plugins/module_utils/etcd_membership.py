# -*- coding: utf-8 -*-
"""Membership rules: who joins (as a learner), who may be removed, what a joiner bootstraps with.

Inputs are plain data: the inventory's members as preflight saw them (name, host, address,
peer_url, initialized) and etcd_status's ``status`` (members with name, id_hex, peer_urls,
is_learner, healthy, started). Members are matched by peer URL, which is what etcd itself
matches on; a member added but never started has no name yet.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_config import peer_url

REMOVE = "playbooks/remove-member.yml -e etcd_member_remove="


def _true(value: Any) -> bool:
    """Facts may arrive as strings ('False') through templating."""
    return str(value).strip().lower() not in ("false", "0", "", "none", "no")


def names(value: Any) -> List[str]:
    """A list of names from a list or a comma-separated string (as given with -e)."""
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    return [str(n) for n in value or []]


def _cluster(status: Optional[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return list((status or {}).get("members") or [])


def _urls(member: Mapping[str, Any]) -> List[str]:
    return [str(u) for u in member.get("peer_urls") or []]


def _entry(status: Optional[Mapping[str, Any]], url: str) -> Optional[Mapping[str, Any]]:
    for c in _cluster(status):
        if url in _urls(c):
            return c
    return None


def join_state(status: Optional[Mapping[str, Any]], member: Mapping[str, Any], peer_port: int = 2380) -> str:
    """What an inventory member is to the running cluster (status), by its peer URL and its data:
    ''        a member as usual (or no cluster is running yet: everyone bootstraps together);
    'join'    not in the cluster, or added as a learner and not started: (re)join as a learner;
    'promote' a learner that runs with its data: promote it once in sync;
    'foreign' not in the cluster but holding data (another cluster's): refused;
    'lost'    a voting member that has run, but no data on this host: refused (remove, then rejoin).
    """
    if not _cluster(status):
        return ""
    entry, initialized = _entry(status, peer_url(member, peer_port)), _true(member.get("initialized"))
    if entry is None:
        return "foreign" if initialized else "join"
    if entry.get("is_learner"):
        return "promote" if initialized else "join"
    # A voting member never started is a bootstrap still under way (initial-cluster-state new).
    return "lost" if not initialized and entry.get("name") else ""


def joiners(status: Optional[Mapping[str, Any]], members: Sequence[Mapping[str, Any]], peer_port: int = 2380) -> List[str]:
    """Inventory hosts that join (or finish joining) the running cluster, in inventory order."""
    return [str(m["host"]) for m in members if join_state(status, m, peer_port) in ("join", "promote")]


def strays(status: Optional[Mapping[str, Any]], members: Sequence[Mapping[str, Any]], peer_port: int = 2380) -> List[Mapping[str, Any]]:
    """Cluster members no inventory host has (a host taken out of the inventory, or one being replaced)."""
    mine = {peer_url(m, peer_port) for m in members}
    return [c for c in _cluster(status) if not set(_urls(c)) & mine]


def label(member: Mapping[str, Any]) -> str:
    return str(member.get("name") or member.get("id_hex") or "?")


# A joiner receives the leader's database file whole (free pages included): near the quota it
# would raise NOSPACE as it starts.
JOIN_QUOTA_SHARE = 0.8


def membership_problems(status: Optional[Mapping[str, Any]], members: Sequence[Mapping[str, Any]],
                        peer_port: int = 2380, remove: Sequence[str] = (), quota_bytes: int = 0) -> List[str]:
    """What stops a run on a running cluster whose membership and inventory differ."""
    problems, remove = [], names(remove)
    sizes = [int(c.get("db_size") or 0) for c in _cluster(status)]
    if quota_bytes and sizes and max(sizes) >= JOIN_QUOTA_SHARE * int(quota_bytes) and any(
            join_state(status, m, peer_port) == "join" for m in members):
        problems.append(
            "a member's database file is %d MiB, %d%% of the %d MiB quota: a new member receives it whole and would "
            "raise NOSPACE as it starts. Defragment first (playbooks/maintenance.yml) or raise "
            "etcd_quota_backend_bytes, then run again" % (max(sizes) >> 20, 100 * max(sizes) // int(quota_bytes),
                                                          int(quota_bytes) >> 20))
    for m in members:
        state = join_state(status, m, peer_port)
        if state == "foreign":
            problems.append(
                "%s is not a member of the running cluster but already holds etcd data: it cannot join with it. "
                "Move the data aside on it (for example mv /var/lib/etcd /var/lib/etcd.old-$(date +%%F)), then run "
                "again: it joins as a learner" % m["host"])
        elif state == "lost":
            problems.append(
                "%s (member %s) is a voting member of the cluster but holds no data: it cannot come back empty. "
                "Take the host out of the inventory, remove the member with %s%s, put the host back and run "
                "again: it joins as a learner and catches up" % (m["host"], m.get("name"), REMOVE, m.get("name")))
    for c in strays(status, members, peer_port):
        if label(c) in remove or c.get("id_hex") in remove:
            continue
        if not c.get("name"):
            problems.append(
                "the cluster has a member added but never started (id %s, peer %s) that no inventory host is: "
                "remove it with %s%s, or put its host in the inventory"
                % (c.get("id_hex"), ", ".join(_urls(c)), REMOVE, c.get("id_hex")))
        else:
            problems.append(
                "member %s (peer %s) is in the cluster but no host of the inventory has it: put its host back in the "
                "inventory, or remove it from the cluster with %s%s (README: 'Replacing and scaling')"
                % (label(c), ", ".join(_urls(c)), REMOVE, label(c)))
    if _cluster(status) and members and not any(_entry(status, peer_url(m, peer_port)) for m in members):
        problems.append("no inventory host is a member of the running cluster: this inventory is not the cluster's")
    return problems


def join_cluster(status: Mapping[str, Any], name: str, url: str) -> str:
    """The initial-cluster a joiner starts with: every current member, itself included (added
    just before), by name; etcd refuses to start when it differs from the membership."""
    entries = []
    for c in _cluster(status):
        if url in _urls(c):
            entries.append("%s=%s" % (name, url))
        elif not c.get("name"):
            raise ValueError("member %s (peer %s) was added but never started: remove it (%s%s) before %s joins"
                             % (c.get("id_hex"), ", ".join(_urls(c)), REMOVE, c.get("id_hex"), name))
        else:
            entries.extend("%s=%s" % (c["name"], u) for u in _urls(c))
    if not any(e.endswith("=" + url) for e in entries):
        raise ValueError("%s (%s) is not in the member list yet: add it first" % (name, url))
    return ",".join(entries)


def find(status: Mapping[str, Any], wanted: str) -> Optional[Mapping[str, Any]]:
    """The member named (or with the hex id) ``wanted``."""
    for c in _cluster(status):
        if wanted in (c.get("name"), c.get("id_hex")):
            return c
    return None


def removal_problems(status: Mapping[str, Any], wanted: str) -> List[str]:
    """Why removing ``wanted`` now would be unsafe (empty when it is safe).

    A voting member may go only if the voting members left, healthy ones only, still make a
    majority of the smaller cluster; a learner never counts toward quorum.
    """
    member = find(status, wanted)
    if member is None:
        names = ", ".join(label(c) for c in _cluster(status)) or "none"
        return ["%s is not a member of this cluster (members: %s): nothing to remove" % (wanted, names)]
    if member.get("is_learner"):
        return []
    voters = [c for c in _cluster(status) if not c.get("is_learner")]
    left = [c for c in voters if c is not member]
    healthy = [c for c in left if c.get("healthy")]
    if not left:
        return ["%s is the only voting member: removing it would end the cluster" % wanted]
    need = len(left) // 2 + 1
    if len(healthy) < need:
        sick = [label(c) for c in left if not c.get("healthy")]
        return ["removing %s would leave %d voting member(s) of which %d healthy, short of the %d a quorum needs "
                "(unhealthy: %s): bring those back first, or remove an unhealthy member instead"
                % (wanted, len(left), len(healthy), need, ", ".join(sick))]
    return []


def bootstrap_settings(config_text: str) -> Dict[str, str]:
    """initial-cluster and initial-cluster-state from a member's etcd.conf.yml (bootstrap-only:
    etcd ignores them once it has data, so a member keeps the ones it started with)."""
    keys = {"initial-cluster": "initial_cluster", "initial-cluster-state": "initial_cluster_state"}
    found: Dict[str, str] = {}
    for line in config_text.splitlines():  # the toolkit writes both as plain one-line values
        key, sep, value = line.partition(":")
        if sep and key in keys:
            found[keys[key]] = value.strip().strip("'\"")
    return found


def without(status: Mapping[str, Any], wanted: str) -> Dict[str, Any]:
    """The status as it would be once ``wanted`` is removed."""
    gone = find(status, wanted)
    return dict(status, members=[c for c in _cluster(status) if c is not gone])


def removal_plan_problems(status: Mapping[str, Any], wanted_names: Any, members: Sequence[Mapping[str, Any]],
                          peer_port: int = 2380) -> List[str]:
    """Every removal in order, each checked on the cluster the earlier ones leave; a member whose
    host is still in the inventory is refused (the next site.yml would add it back as a learner)."""
    wanted = names(wanted_names)
    if not wanted:
        return ["name the members to remove: -e etcd_member_remove=NAME (several: NAME1,NAME2; one at a time, "
                "in that order)"]
    problems, now = [], dict(status)
    mine = {peer_url(m, peer_port): str(m.get("host") or m.get("name")) for m in members}
    for name in wanted:
        member = find(now, name)
        hosts = sorted({mine[u] for u in _urls(member or {}) if u in mine})
        if hosts:
            problems.append("%s is the member of inventory host %s: take the host out of the group first (the next "
                            "site.yml would add it back as a learner), then run again" % (name, ", ".join(hosts)))
        found = removal_problems(now, name)
        problems.extend(found)
        if not found:
            now = without(now, name)
    return problems
