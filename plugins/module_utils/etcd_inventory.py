# -*- coding: utf-8 -*-
"""Inventory rules checked before any host is touched.

Each problem names what is wrong and how to fix it, because the operator
reading it is usually mid-incident.
"""
from __future__ import annotations

import ipaddress
import posixpath
import re

from collections import Counter
from typing import Any, Mapping, Sequence

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import ARCH_MAP, version_problem


# Safe inside initial-cluster (no ',' or '='), as a file name and as a Prometheus label value.
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


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

    for member in members:
        name = str(member.get("name"))
        if not MEMBER_NAME.match(name):
            problems.append(
                "host '%s': member name %r cannot go into initial-cluster, file names and metric labels: set "
                "etcd_member_name to letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)"
                % (member.get("host", name), name))

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


def zone_report(members: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Losing one zone must never lose quorum: no zone may hold a majority of members."""
    problems: list[str] = []
    warnings: list[str] = []
    zones = {str(m.get("name")): str(m.get("zone") or "") for m in members}
    if not any(zones.values()):
        return {"problems": problems, "warnings": warnings}
    unzoned = sorted(name for name, zone in zones.items() if not zone)
    if unzoned:
        problems.append(
            "etcd_zone is set on some members but not on %s: set it on every member (or on none)"
            % ", ".join(unzoned)
        )
        return {"problems": problems, "warnings": warnings}
    count = len(zones)
    by_zone: dict[str, list[str]] = {}
    for name, zone in sorted(zones.items()):
        by_zone.setdefault(zone, []).append(name)
    for zone, names in sorted(by_zone.items()):
        if len(names) > count // 2:
            problems.append(
                "zone %s holds %d of %d members (%s): losing that zone loses quorum; spread the members "
                "so no zone holds a majority (3 members over 3 zones, 5 over 3 or more)"
                % (zone, len(names), count, ", ".join(names))
            )
        elif len(names) > 1:
            warnings.append("members %s share zone %s" % (", ".join(names), zone))
    return {"problems": problems, "warnings": warnings}


# Folders a setting must never be: the roles chown and chmod what they are given.
SYSTEM_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
                         "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local",
                         "/usr/local/bin", "/usr/local/lib", "/usr/local/sbin", "/usr/sbin", "/var", "/var/lib",
                         "/var/log", "/var/tmp", "/var/backups", "/mnt", "/media"})


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def directory_problems(named_dirs: Mapping[str, Any], private: Sequence[str] = ("etcd_data_dir", "etcd_wal_dir")
                       ) -> list[str]:
    """Folders absolute and not system folders; the private ones (data, WAL) share nothing with the others.

    An empty value is a setting not in use (etcd_wal_dir without a WAL device).
    """
    problems: list[str] = []
    dirs: dict[str, str] = {}
    for name, value in named_dirs.items():
        text = str(value or "")
        if not text:
            continue
        if not text.startswith("/"):
            problems.append("%s (%r) is not an absolute path: start it with /" % (name, text))
            continue
        norm = posixpath.normpath(text)
        if norm in SYSTEM_DIRS:
            problems.append("%s is %s, a system folder the roles would take over (owner, mode): use a folder "
                            "of its own, such as /var/lib/etcd or /etc/etcd" % (name, norm))
            continue
        dirs[name] = norm
    for name in private:
        if name not in dirs:
            continue
        for other, path in dirs.items():
            if other == name:
                continue
            if _inside(path, dirs[name]) or _inside(dirs[name], path):
                problems.append("%s (%s) and %s (%s) overlap: etcd's %s must share no folder with anything "
                                "else; move one of them" % (name, dirs[name], other, path,
                                                            "data" if name == "etcd_data_dir" else "WAL"))
    return sorted(set(problems))


def health_problems(members: Sequence[Mapping[str, Any]], repair: Sequence[str] = ()) -> list[str]:
    """A running cluster (some member holds data) with a member down: refused unless that member is
    named in repair (the run that brings it back)."""
    if not any(m.get("initialized") for m in members):
        return []
    down = [m for m in members if m.get("initialized") and str(m.get("service_active")).lower() in ("false", "0")]
    unlisted = [m for m in down if str(m.get("host")) not in repair and str(m.get("name")) not in repair]
    if not unlisted:
        return []
    names = ", ".join("%s (%s)" % (m.get("host", m.get("name")), m.get("name")) for m in unlisted)
    return ["%s: etcd is not running there, so this cluster is already short of %d member(s) and a change now "
            "could cost quorum. Bring it back first (systemctl start etcd; journalctl -u etcd says why it stopped), "
            "or let this run start it: -e '{\"etcd_repair_members\": [%s]}'"
            % (names, len(down), ", ".join('\"%s\"' % m.get("host", m.get("name")) for m in unlisted))]


def status_problems(status: Mapping[str, Any], members: Sequence[Mapping[str, Any]], repair: Sequence[str] = ()) -> list[str]:
    """What the running cluster itself reports (etcd_status): a member that runs but is not healthy,
    or an alarm, refused unless the member is named in repair. Members whose service is down are
    health_problems' to report."""
    if not status:
        return []
    by_name = {str(m.get("name")): m for m in members}
    skip = set(repair)
    for name, member in by_name.items():
        if str(member.get("service_active")).lower() in ("false", "0") or str(member.get("host")) in repair:
            skip.add(name)
    problems = []
    for member in status.get("members") or []:
        name = str(member.get("name") or member.get("id_hex"))
        if member.get("healthy") or member.get("is_learner") or name in skip:
            continue
        problems.append(
            "member %s (%s) runs but is not healthy: %s. A change now could cost quorum: bring it back first "
            "(on %s: journalctl -u etcd says why; systemctl restart etcd), check with playbooks/status.yml, "
            "then run again"
            % (name, member.get("endpoint") or "no endpoint", "; ".join(member.get("errors") or ["no answer"]),
               by_name.get(name, {}).get("host", name)))
    for alarm in status.get("alarms") or []:
        problems.append(
            "the cluster holds a %s alarm (member %s): etcd refuses writes until it is dealt with, and no "
            "restart would pass its health gate; for NOSPACE run playbooks/maintenance.yml -e "
            "etcd_maintenance_mode=nospace before changing anything" % (alarm.get("alarm"), alarm.get("member") or alarm.get("member_id_hex")))
    return problems


def port_problems(named_ports: Mapping[str, Any]) -> list[str]:
    """Each port variable a TCP port of its own: {variable name: value} -> problems."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for name, value in named_ports.items():
        try:
            port = int(value)
        except (TypeError, ValueError):
            problems.append("%s (%r) is not a TCP port number: use 1-65535" % (name, value))
            continue
        if not 1 <= port <= 65535:
            problems.append("%s (%d) is not a TCP port: use 1-65535" % (name, port))
        elif port in seen:
            problems.append(
                "%s (%d) is also %s: etcd cannot serve both on one port; give each its own (defaults: "
                "etcd_client_port 2379, etcd_peer_port 2380, etcd_metrics_port 2381, etcd_node_exporter_port 9100)"
                % (name, port, seen[port]))
        else:
            seen[port] = name
    return problems


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_report(
    members: Sequence[Mapping[str, Any]], quota_bytes: int = 0, require_clock_sync: bool = True,
    ports: Sequence[int] = (2379, 2380),
) -> dict[str, list[str]]:
    """Per-host gates: synchronised clock, free ports, room for the backend quota."""
    problems: list[str] = []
    for member in members:
        name = member.get("name")
        clock = member.get("clock_synchronized")
        if require_clock_sync and clock is not None and clock != "yes":
            problems.append(
                "host '%s': clock synchronisation is %s: enable chrony or systemd-timesyncd (etcd leases and "
                "TLS need agreeing clocks), or set etcd_preflight_require_clock_sync: false where the clock "
                "is managed elsewhere (containers)" % (name, "off" if clock == "no" else "not visible")
            )
        if member.get("listening_ports") is not None and not member.get("service_active"):
            busy = sorted(set(ports) & set(member.get("listening_ports") or []))
            if busy:
                problems.append(
                    "host '%s': port(s) %s already in use by another program: stop it, or choose other "
                    "etcd_client_port / etcd_peer_port" % (name, ", ".join(str(p) for p in busy))
                )
        address, own = str(member.get("address") or ""), [str(a) for a in member.get("host_addresses") or []]
        if ":" in address:
            # Refused rather than half-handled: every URL the roles write (etcdctl, backups,
            # Prometheus targets, certificates) would need brackets and separate tests.
            problems.append(
                "host '%s': etcd_address %s is an IPv6 address, which this toolkit does not support yet: set "
                "etcd_address to the host's IPv4 address" % (member.get("host", name), address)
            )
        elif own and _is_ip(address) and str(ipaddress.ip_address(address)) not in own:
            problems.append(
                "host '%s': etcd_address %s is not an address of this host (it has %s): set etcd_address to the "
                "IP this host's peers and clients reach it on" % (member.get("host", name), address, ", ".join(own))
            )
        free = member.get("free_bytes")
        if quota_bytes and free is not None and not member.get("initialized") and int(free) < quota_bytes:
            problems.append(
                "host '%s': %.1f GiB free where the data will live, less than the %.1f GiB backend quota: "
                "use a larger volume or lower etcd_quota_backend_bytes"
                % (name, int(free) / 1024**3, quota_bytes / 1024**3)
            )
    return {"problems": problems, "warnings": []}


def preflight_report(
    members: Sequence[Mapping[str, Any]], allow_even: bool = False, group: str = "etcd",
    quota_bytes: int = 0, require_clock_sync: bool = True, ports: Sequence[int] = (2379, 2380),
    upgrade: bool = False,
) -> dict[str, list[str]]:
    """Inventory rules plus per-member version, architecture and state checks.

    Each member dict may also carry: version, arch (ansible_architecture or a
    release arch), installed_version ('' when etcd is absent), initialized
    (the data dir already holds a member).
    upgrade: the upgrade playbook's run, where a running member's version may change (its path
    rules are etcd_upgrade's) but every member must already run.
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
        if upgrade and str(member.get("service_active")).lower() in ("false", "0", "none", ""):
            problems.append(
                "host '%s' does not run etcd: an upgrade starts from a running, healthy cluster; start it "
                "(systemctl start etcd) or provision it with playbooks/site.yml first" % member.get("name"))
        if installed and installed != wanted and not version_problem(wanted) and not upgrade:
            problems.append(
                "host '%s' already runs etcd %s but etcd_version is %s: provisioning never changes "
                "the version of a running member; set etcd_version: \"%s\" (or use the upgrade playbook)"
                % (member.get("name"), installed, wanted, installed)
            )
    for member in members:
        volumes = list(member.get("volumes") or [])
        for volume in volumes:
            if volume.get("action") == "refuse":
                problems.append("host '%s': %s" % (member.get("name"), volume.get("reason")))
        devices = [v.get("resolved") or v.get("device") for v in volumes]
        if len(devices) != len(set(devices)):
            problems.append(
                "host '%s' names the same device for data and WAL (%s, after resolving links): give the WAL "
                "its own device or leave etcd_wal_device empty"
                % (member.get("name"), " and ".join(str(v.get("device")) for v in volumes))
            )
        if member.get("initialized") and any(v.get("role") == "wal" and v.get("action") == "format"
                                             for v in volumes):
            problems.append(
                "host '%s' already holds data and would get a new WAL volume: moving a live WAL is not "
                "automated; replace the member instead, or leave etcd_wal_device empty" % member.get("name")
            )
        if "volumes" in member and not any(v.get("role") == "data" for v in volumes):
            warnings.append(
                "host '%s' keeps etcd data on the root filesystem: set etcd_data_device to a dedicated disk"
                % member.get("name")
            )
    for extra in (zone_report(members),
                  host_report(members, quota_bytes=quota_bytes, require_clock_sync=require_clock_sync,
                              ports=ports)):
        problems.extend(extra["problems"])
        warnings.extend(extra["warnings"])
    initialized = [str(m.get("name")) for m in members if m.get("initialized")]
    fresh = [str(m.get("name")) for m in members if not m.get("initialized")]
    running = [m for m in members if str(m.get("service_active")).lower() not in ("false", "0", "none", "")]
    # With members running, new hosts join as learners (etcd_membership); with none, they cannot.
    if initialized and fresh and not running:
        problems.append(
            "%s already hold cluster data but %s do not, and no member runs: new hosts join a running "
            "cluster only (as learners). Start the cluster first (systemctl start etcd on its members, or "
            "playbooks/site.yml with them alone in the inventory), then run again"
            % (", ".join(initialized), ", ".join(fresh))
        )
    return report
