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

from typing import Iterable, List, Mapping, Sequence

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
