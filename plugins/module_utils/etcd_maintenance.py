# -*- coding: utf-8 -*-
"""Defragmentation and NOSPACE recovery rules (playbooks/maintenance.yml), from etcd's status.

Upstream (etcd website, op-guide/maintenance.md; etcd-operations.md here):
- defragmentation rewrites one member's database and blocks that member's reads and writes
  while it runs: one member at a time, followers first, the leader last and only after
  leadership moved away, so clients always have a serving majority;
- only the space freed inside the database (db size minus db size in use) comes back;
- NOSPACE (the database reached its quota) needs: compact history, defragment every member,
  then `alarm disarm`; until then every write is refused.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

MODES = ("defrag", "nospace")


def _mib(n: int) -> str:
    return "%.1f MiB" % (int(n) / 2**20)


def blockers(status: Mapping[str, Any], mode: str) -> List[str]:
    """What stops a maintenance run: anything unhealthy, except NOSPACE alarms in nospace mode."""
    problems = [str(p) for p in status.get("problems") or []]
    if mode == "nospace":
        problems = [p for p in problems if not p.startswith("alarm NOSPACE ")]
    if not status.get("members"):
        problems = problems or ["no member answered"]
    return problems


def alarms_of(status: Mapping[str, Any], kind: Optional[str] = None) -> List[str]:
    """Alarm kinds raised (all kinds, or only `kind`), one entry per member and kind."""
    return [str(a.get("alarm")) for a in status.get("alarms") or [] if kind is None or a.get("alarm") == kind]


def other_alarms(status: Mapping[str, Any]) -> List[str]:
    """Alarms this playbook must not disarm (CORRUPT means a member's data differs)."""
    return sorted({"%s on %s" % (a.get("alarm"), a.get("member") or a.get("member_id_hex"))
                   for a in status.get("alarms") or [] if a.get("alarm") != "NOSPACE"})


def defrag_plan(status: Mapping[str, Any], mode: str, min_free_bytes: int,
                only: Sequence[str] = (), allow_downtime: bool = False) -> Dict[str, Any]:
    """Which members to defragment, in order: followers by name, then the leader.

    defrag mode: only members whose free space inside the database (db_size - db_size_in_use)
    reaches min_free_bytes. nospace mode: every member (the alarm clears only once all are).
    `only` limits the run to those member names. Returns {order, skipped, problems}; each row has
    name, endpoint, id_hex, is_leader, db_size, in_use, free and why.
    """
    problems: List[str] = []
    if mode not in MODES:
        problems.append("etcd_maintenance_mode is %r: use defrag or nospace" % mode)
    if isinstance(only, str):  # -e etcd_maintenance_members=a,b
        only = [n.strip() for n in only.split(",") if n.strip()]
    everyone = list(status.get("members") or [])
    members = [m for m in everyone if not m.get("is_learner")]
    names = [str(m.get("name")) for m in members]
    unknown = [n for n in only if n not in names]
    if unknown:
        problems.append("etcd_maintenance_members names %s, not a voting member of this cluster (%s): "
                        "use names from playbooks/status.yml" % (", ".join(unknown), ", ".join(names)))
    voters = int(status.get("voting_members") or 0)
    if voters and voters - int(status.get("quorum") or 0) < 1 and not allow_downtime:
        problems.append("%d voting member(s) have no quorum margin: a member being defragmented serves nothing, "
                        "so every write stops while it runs; grow the cluster to 3 or 5 members first, or accept "
                        "that with etcd_maintenance_allow_downtime: true" % voters)
    if mode == "nospace" and only:
        problems.append("nospace mode defragments every member (the alarm clears only once all are): "
                        "leave etcd_maintenance_members empty")
    rows, skipped = [], []
    for m in sorted(members, key=lambda m: (bool(m.get("is_leader")), str(m.get("name")))):
        size, in_use = int(m.get("db_size") or 0), int(m.get("db_size_in_use") or 0)
        row = {"name": str(m.get("name")), "endpoint": str(m.get("endpoint") or ""), "id_hex": str(m.get("id_hex")),
               "is_leader": bool(m.get("is_leader")), "db_size": size, "in_use": in_use, "free": max(size - in_use, 0)}
        if only and row["name"] not in only:
            row["why"] = "not in etcd_maintenance_members"
            skipped.append(row)
        elif mode == "defrag" and row["free"] < int(min_free_bytes):
            row["why"] = "%s free, under etcd_maintenance_defrag_min_free_bytes (%s)" % (
                _mib(row["free"]), _mib(min_free_bytes))
            skipped.append(row)
        else:
            row["why"] = "NOSPACE recovery" if mode == "nospace" else "%s free" % _mib(row["free"])
            rows.append(row)
    # A learner answers no linearizable read, so the health gates cannot follow it: promote it
    # first. In a NOSPACE recovery its database would stay over the quota and raise the alarm again.
    learners = [str(m.get("name")) for m in everyone if m.get("is_learner")]
    if mode == "nospace" and learners:
        problems.append("learner %s cannot be defragmented here, and its database would raise NOSPACE again "
                        "after the disarm: promote it (etcdctl member promote) or remove it first" % ", ".join(learners))
    skipped += [{"name": str(m.get("name")), "endpoint": str(m.get("endpoint") or ""), "id_hex": str(m.get("id_hex")),
                 "is_leader": False, "db_size": int(m.get("db_size") or 0), "in_use": int(m.get("db_size_in_use") or 0),
                 "free": 0, "why": "a learner: not defragmented here (promote it first)"}
                for m in everyone if m.get("is_learner")]
    for row in rows:
        if not row["endpoint"]:
            problems.append("member %s has no client URL to defragment through" % row["name"])
    return {"order": rows, "skipped": skipped, "problems": problems}


def heir(status: Mapping[str, Any], leaving: str, done: Sequence[str] = ()) -> str:
    """The member (hex ID) to hand leadership to: a healthy voter, one already done first ('' if none)."""
    others = [m for m in status.get("members") or []
              if m.get("name") != leaving and not m.get("is_learner") and m.get("healthy")]
    others.sort(key=lambda m: (m.get("name") not in done, str(m.get("name"))))
    return str(others[0]["id_hex"]) if others else ""


def plan_lines(plan: Mapping[str, Any], mode: str, revision: int = 0) -> List[str]:
    """The plan as the playbook prints it (check mode prints only this)."""
    lines = []
    if mode == "nospace":
        lines.append("1. alarm list: NOSPACE; 2. compact to revision %d (history before it is dropped); "
                     "3. defragment every member; 4. alarm disarm; 5. a test write" % revision)
    for i, row in enumerate(plan["order"], 1):
        lines.append("defragment %d: %s%s (database %s, %s in use, %s)"
                     % (i, row["name"], " (leader: leadership moves away first)" if row["is_leader"] else "",
                        _mib(row["db_size"]), _mib(row["in_use"]), row["why"]))
    for row in plan["skipped"]:
        lines.append("leave %s: %s" % (row["name"], row["why"]))
    if not plan["order"]:
        lines.append("nothing to defragment")
    return lines


def report_lines(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    """One line per defragmented member: size before and after, and how long it took."""
    lines = ["%-16s %12s %12s %9s" % ("member", "before", "after", "seconds")]
    for r in rows:
        lines.append("%-16s %12s %12s %9.1f" % (r["name"], _mib(r["before"]), _mib(r["after"]), float(r["seconds"])))
    return lines


_COMPACTIONS = re.compile(r"^etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count(?:\{[^}]*\})? (\S+)$", re.M)


def compactions_done(metrics_text: str) -> int:
    """How many compactions this member has finished (its /metrics text); -1 if it does not say."""
    found = _COMPACTIONS.search(metrics_text or "")
    return int(float(found.group(1))) if found else -1
