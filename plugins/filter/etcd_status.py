# -*- coding: utf-8 -*-
"""Filter ``etcd_status_table``: render the etcd_status module's ``status`` dict
as a fixed-width table (NAME, ENDPOINT, ID, VERSION, LEADER, LEARNER, HEALTHY,
REVISION, RAFT TERM, DB SIZE) plus leader / quorum / health / problems lines.

    - ansible.builtin.debug:
        msg: "{{ etcd.status | etcd_status_table }}"

Self-contained on purpose: on the controller ``ansible.module_utils`` is the
installed package only (the ansible.cfg ``module_utils`` path is used when
modules are shipped to hosts), so importing module_utils.etcd_status here
fails. The filter only needs the plain dict anyway.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence

COLUMNS = ("NAME", "ENDPOINT", "ID", "VERSION", "LEADER", "LEARNER", "HEALTHY",
           "REVISION", "RAFT TERM", "DB SIZE")


def _human_bytes(n: Any) -> str:
    try:
        size = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # unreachable; keeps type checkers quiet


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


def _row(m: Mapping[str, Any]) -> List[str]:
    reachable = m.get("reachable", False)
    name = m.get("name") or ("(unstarted)" if not m.get("started", True) else "?")
    return [
        name,
        m.get("endpoint") or "-",
        m.get("id_hex") or "-",
        m.get("version") or "-",
        _yes(m.get("is_leader")) if reachable else "-",
        _yes(m.get("is_learner")),
        _yes(m.get("healthy")),
        str(m.get("revision")) if reachable else "-",
        str(m.get("raft_term")) if reachable else "-",
        _human_bytes(m.get("db_size")) if reachable else "-",
    ]


def _format(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def etcd_status_table(status: Mapping[str, Any]) -> str:
    """Fixed-width table plus summary lines (see DOCUMENTATION)."""
    if not isinstance(status, Mapping):
        raise TypeError("etcd_status_table expects the 'status' dict returned by etcd_status")
    members = status.get("members") or []
    lines = _format([list(COLUMNS)] + [_row(m) for m in members])

    leader = status.get("leader")
    if leader:
        lead = f"{leader.get('name') or '?'} ({leader.get('id_hex')})"
    elif len(status.get("leaders_seen") or []) > 1:
        lead = "NONE AGREED - members report " + ", ".join(status["leaders_seen"])
    else:
        lead = "NONE"
    learners = status.get("learners", 0)
    lines += [
        "",
        f"leader:   {lead}",
        f"quorum:   {status.get('healthy_voters', 0)}/{status.get('voting_members', 0)} voting "
        f"members healthy, {status.get('quorum', 0)} needed "
        f"({'ok' if status.get('has_quorum') else 'LOST'})"
        + (f"; {learners} learner{'s' if learners != 1 else ''}" if learners else ""),
        f"health:   {'HEALTHY' if status.get('healthy') else 'UNHEALTHY'}",
        f"versions: {', '.join(status.get('versions') or []) or '-'}; "
        f"revision {status.get('revision', 0)} (spread {status.get('revision_spread', 0)})",
    ]
    problems = status.get("problems") or []
    lines.append("problems: " + ("none" if not problems else ""))
    lines += [f"  - {p}" for p in problems]
    return "\n".join(line.rstrip() for line in lines)


class FilterModule:
    """etcd status filters."""

    def filters(self) -> Dict[str, Any]:
        return {"etcd_status_table": etcd_status_table}
