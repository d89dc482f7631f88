# -*- coding: utf-8 -*-
"""Inventory rules checked before any host is touched.

Each problem names what is wrong and how to fix it, because the operator
reading it is usually mid-incident.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

try:
    from ansible.module_utils.etcd_versions import ARCH_MAP, version_problem
except ImportError:  # pragma: no cover - plain pytest imports it directly
    from etcd_versions import ARCH_MAP, version_problem  # type: ignore[no-redef]


def inventory_problems(
    members: Sequence[Mapping[str, Any]], allow_even: bool = False, group: str = "etcd"
) -> dict[str, list[str]]:
    """Return {'problems': [...], 'warnings': [...]} for the member list.

    members: [{'name': ..., 'address': ...}, ...] in inventory order.
    """
    problems: list[str] = []
    warnings: list[str] = []
    count = len(members)
    if count == 0:
        problems.append(
            "the inventory group '%s' has no hosts: add your control-plane hosts to it" % group
        )
        return {"problems": problems, "warnings": warnings}

    if count % 2 == 0:
        text = (
            "%d members is an even count: it tolerates no more failures than %d members "
            "and risks a split vote" % (count, count - 1)
        )
        if allow_even:
            warnings.append(text + " (allowed because etcd_allow_even_members is true)")
        else:
            problems.append(
                text + ": use 3 or 5 members, or set etcd_allow_even_members: true if this is deliberate"
            )
    elif count == 1:
        warnings.append("a single member has no fault tolerance: use 3 or 5 members in production")
    if count > 7:
        warnings.append(
            "%d members: every write waits for a majority; upstream recommends 3 to 7" % count
        )

    for name, seen in sorted(Counter(str(m.get("name")) for m in members).items()):
        if seen > 1:
            problems.append(
                "member name '%s' is used by %d hosts: set a unique etcd_member_name per host" % (name, seen)
            )

    missing = [str(m.get("name")) for m in members if not m.get("address")]
    for name in missing:
        problems.append(
            "host '%s' has no address: set etcd_address (the IP peers and clients reach it on)" % name
        )
    by_address: dict[str, list[str]] = {}
    for member in members:
        if member.get("address"):
            by_address.setdefault(str(member["address"]), []).append(str(member.get("name")))
    for address, names in sorted(by_address.items()):
        if len(names) > 1:
            problems.append(
                "address %s is shared by %s: each member needs its own etcd_address"
                % (address, ", ".join(names))
            )
    return {"problems": problems, "warnings": warnings}


def preflight_report(
    members: Sequence[Mapping[str, Any]], allow_even: bool = False, group: str = "etcd"
) -> dict[str, list[str]]:
    """Inventory rules plus per-member version, architecture and state checks.

    Each member dict may also carry: version, arch (ansible_architecture or a
    release arch), installed_version ('' when etcd is absent), initialized
    (the data dir already holds a member).
    """
    report = inventory_problems(members, allow_even=allow_even, group=group)
    problems, warnings = report["problems"], report["warnings"]

    versions = sorted({str(m.get("version")) for m in members})
    for version in versions:
        problem = version_problem(version)
        if problem:
            problems.append(problem)
    if len(versions) > 1:
        problems.append(
            "members ask for different etcd versions (%s): provisioning installs one version; "
            "set etcd_version once for the group" % ", ".join(versions)
        )
    for member in members:
        arch = str(member.get("arch") or "")
        if arch not in ARCH_MAP:
            problems.append(
                "host '%s' reports architecture '%s', which has no official etcd release "
                "(supported: %s): use supported hardware or set etcd_arch"
                % (member.get("name"), arch, ", ".join(sorted(set(ARCH_MAP.values()))))
            )
        installed = str(member.get("installed_version") or "")
        wanted = str(member.get("version"))
        if installed and installed != wanted and not version_problem(wanted):
            problems.append(
                "host '%s' already runs etcd %s but etcd_version is %s: provisioning never changes "
                "the version of a running member; set etcd_version: \"%s\" (or use the upgrade playbook)"
                % (member.get("name"), installed, wanted, installed)
            )
    initialized = [str(m.get("name")) for m in members if m.get("initialized")]
    fresh = [str(m.get("name")) for m in members if not m.get("initialized")]
    if initialized and fresh:
        problems.append(
            "%s already hold cluster data but %s do not: adding members to a running cluster is a "
            "member replacement (learner join), not provisioning; remove the new hosts from the "
            "inventory and add them with the member-replacement playbook"
            % (", ".join(initialized), ", ".join(fresh))
        )
    return report
