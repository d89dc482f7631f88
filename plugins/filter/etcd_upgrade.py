# -*- coding: utf-8 -*-
"""Filters for rolling upgrades and restarts; the rules live in module_utils/etcd_upgrade.py.

    etcd_version | etcd_upgrade_problems(status, etcd_config_extra)  -> refusals (empty: allowed)
    hosts | etcd_upgrade_plan(names, status, etcd_version)           -> order, leader, quorum margin
    status | etcd_member_check(name, applied_before, version)       -> checks still failing
    previous | etcd_rollback_allowed(target, cluster_version)       -> may the old binary come back
    stat_loop_result | etcd_link_back                               -> etcd_files entry restoring a link
    command_result.delta | etcd_delta_seconds                       -> seconds
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Sequence

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_upgrade
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import version_problem


def etcd_upgrade_problems(target: Any, status: Mapping[str, Any], extra: Mapping[str, Any],
                          names: Sequence[str] = (), allow_downtime: bool = False) -> list[str]:
    target = str(target)
    if version_problem(target):
        return []  # preflight's version rule already names it
    status = status or {}
    versions = [str(m.get("version")) for m in status.get("members") or [] if m.get("version")]
    if not versions:
        return ["no member reported its version: an upgrade needs a running, healthy cluster (playbooks/status.yml)"]
    auth = status.get("auth_enabled")
    problems = []
    if auth is None:
        problems.append("could not tell whether authentication is on (see the warning above): fix the admin "
                        "certificate or the cluster first")
    problems += etcd_upgrade.path_problems(versions, target, bool(auth))
    problems += etcd_upgrade.extra_key_problems(extra or {}, target)
    problems += etcd_upgrade.membership_problems(status, [str(n) for n in names], bool(allow_downtime))
    return problems


def etcd_upgrade_plan(hosts: Sequence[str], names: Mapping[str, str], status: Mapping[str, Any],
                      target: Any) -> Dict[str, Any]:
    return etcd_upgrade.plan(list(hosts), dict(names), status or {}, str(target))


def etcd_member_check(status: Mapping[str, Any], name: str, applied_before: Any = 0, version: Any = "") -> list[str]:
    return etcd_upgrade.member_check(status or {}, str(name), int(applied_before or 0), str(version or ""))


def etcd_rollback_allowed(previous: Any, target: Any, cluster_version: Any = "", last: bool = False) -> bool:
    return etcd_upgrade.rollback_allowed(str(previous), str(target), str(cluster_version or ""), bool(last))


def etcd_link_back(result: Mapping[str, Any]) -> Dict[str, str]:
    """One loop result of a stat of the previous release's binary (item: the staged link)
    -> the etcd_files entry pointing that link back at it."""
    return {"path": str(result["item"]["path"]), "state": "link", "src": str(result["stat"]["path"])}


def etcd_delta_seconds(delta: Any) -> float:
    """A command result's delta ('0:00:01.234567') in seconds; 0 when absent."""
    try:
        hours, minutes, seconds = str(delta).split(":")
        return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 2)
    except ValueError:
        return 0.0


def etcd_turn_row(turn: Mapping[str, Any]) -> str:
    """One member's turn as a table row (roles/etcd_upgrade report)."""
    return "%-10s %-10s %-9s %-9s %9s %15s %13s" % (
        turn.get("host"), turn.get("member"), turn.get("from"), turn.get("to"), turn.get("seconds"),
        turn.get("move_leader_seconds") if turn.get("led_before") else "-", turn.get("leaderless_seconds"))


class FilterModule:
    """etcd upgrade filters."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {
            "etcd_upgrade_problems": etcd_upgrade_problems,
            "etcd_upgrade_plan": etcd_upgrade_plan,
            "etcd_member_check": etcd_member_check,
            "etcd_rollback_allowed": etcd_rollback_allowed,
            "etcd_link_back": etcd_link_back,
            "etcd_turn_row": etcd_turn_row,
            "etcd_delta_seconds": etcd_delta_seconds,
        }
