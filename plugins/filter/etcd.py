# -*- coding: utf-8 -*-
"""Filters for the etcd roles: version rules, inventory checks, config rendering."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ansible.errors import AnsibleFilterError
from ansible_collections.controlplane.etcd.plugins.module_utils import (
    etcd_backup,
    etcd_config,
    etcd_files,
    etcd_inventory,
    etcd_pki,
    etcd_plan,
    etcd_rbac,
    etcd_versions,
)


def etcd_version_problem(version: Any) -> str:
    """Empty string when the version is deployable, else why not and what to do."""
    return etcd_versions.version_problem(version) or ""


def etcd_version_warnings(version: Any) -> list[str]:
    return [] if etcd_versions.version_problem(version) else etcd_versions.version_warnings(version)


def etcd_backdated_not_before(instant: str) -> str:
    """The not_before (x509_certificate_info's form) of a certificate signed at ``instant``:
    one whose not_before sorts earlier was issued before it (certificates start BACKDATE early)."""
    try:
        when = etcd_pki.parse_instant(instant)
    except etcd_pki.PkiError as e:
        raise AnsibleFilterError(str(e))
    if when is None:
        raise AnsibleFilterError("etcd_pki_reissue_before is empty")
    return (when.replace(microsecond=0) - etcd_pki.BACKDATE).strftime("%Y%m%d%H%M%SZ")


def etcd_arch(machine: str) -> str:
    """Release architecture for ansible_architecture, or '' when none exists (preflight reports it)."""
    return etcd_versions.ARCH_MAP.get(str(machine), "")


def etcd_tarball(version: Any, arch: str) -> str:
    return etcd_versions.tarball_name(etcd_versions.parse_version(version), arch)


def etcd_release_checksum(sums_text: str, filename: str) -> str:
    """Pick one file's SHA-256 out of a release SHA256SUMS text."""
    for line in sums_text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename:
            digest = parts[0].lower()
            if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
                return digest
    raise AnsibleFilterError(
        "%s is not listed in the release's SHA256SUMS: check etcd_version, the architecture "
        "and etcd_release_mirror" % filename
    )


def etcd_version_facts(version: Any) -> dict[str, Any]:
    """Feature switches the roles branch on, computed in one place."""
    parsed = etcd_versions.parse_version(version)
    return {
        "version": str(parsed),
        "minor": parsed.minor_line,
        "has_etcdutl": etcd_versions.has_etcdutl(parsed),
        "has_livez": etcd_versions.has_livez(parsed),
        "tls_min_version": etcd_versions.supports_tls_min_version(parsed),
    }


def etcd_preflight_report(members: Sequence[Mapping[str, Any]], allow_even: bool = False,
                          group: str = "etcd", quota_bytes: Any = 0, require_clock_sync: bool = True,
                          ports: Sequence[Any] = (2379, 2380), upgrade: bool = False) -> dict[str, list[str]]:
    return etcd_inventory.preflight_report(
        members, allow_even=allow_even, group=group, quota_bytes=int(quota_bytes or 0),
        require_clock_sync=bool(require_clock_sync), ports=[int(p) for p in ports], upgrade=bool(upgrade),
    )


def etcd_config_extra_problems(extra: Mapping[str, Any]) -> list[str]:
    return etcd_config.extra_problems(extra or {})


def etcd_directory_problems(named_dirs: Mapping[str, Any]) -> list[str]:
    return etcd_inventory.directory_problems(named_dirs)


def etcd_health_problems(members: Sequence[Mapping[str, Any]], repair: Sequence[str] = ()) -> list[str]:
    return etcd_inventory.health_problems(members, [str(r) for r in repair or []])


def etcd_tls_problems(version: Any, tls_min_version: Any, cipher_suites: Sequence[str], key_type: Any) -> list[str]:
    try:
        return etcd_config.tls_problems(str(version), str(tls_min_version), list(cipher_suites or []), str(key_type))
    except ValueError:
        return []  # a bad version is reported by its own check


def etcd_rbac_problems(applications: Sequence[Mapping[str, Any]], reserved: Sequence[str]) -> list[str]:
    return etcd_rbac.application_problems(applications, [str(r) for r in reserved])


def etcd_status_problems(status: Mapping[str, Any], members: Sequence[Mapping[str, Any]],
                         repair: Sequence[str] = ()) -> list[str]:
    return etcd_inventory.status_problems(status or {}, members, [str(r) for r in repair or []])


def etcd_port_problems(named_ports: Mapping[str, Any]) -> list[str]:
    return etcd_inventory.port_problems(named_ports)


def etcd_timing_problems(heartbeat_ms: Any, election_ms: Any) -> list[str]:
    try:
        return etcd_config.timing_problems(int(heartbeat_ms), int(election_ms))
    except (TypeError, ValueError):
        return ["etcd_heartbeat_interval and etcd_election_timeout must be whole milliseconds"]


def etcd_initial_cluster(members: Sequence[Mapping[str, Any]], peer_port: int = 2380) -> str:
    return etcd_config.initial_cluster(members, peer_port)


def etcd_member_config(settings: Mapping[str, Any], version: Any) -> dict[str, Any]:
    try:
        return etcd_config.render(settings, str(version))
    except (KeyError, ValueError) as exc:
        raise AnsibleFilterError("cannot render the etcd configuration: %s" % exc)


def etcd_rolling_order(hosts: Sequence[str], names: Mapping[str, str], status: Mapping[str, Any]) -> list[str]:
    return etcd_plan.rolling_order(hosts, names, status)


def etcd_volume_plan(pair: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge one volume request with what etcd_block_device found: (item, result) -> plan."""
    item, result = pair
    return {
        "role": item["role"], "device": item["device"], "mount": item["mount"],
        # The device node behind the path: two symlinks to one disk are one device.
        "resolved": (result.get("device") or {}).get("resolved") or item["device"],
        "action": result.get("action", "refuse"),
        "reason": result.get("reason") or result.get("msg") or "the device could not be inspected",
    }


def etcd_calendar_interval(analyze_output: str) -> int:
    """Longest gap in seconds between the runs `systemd-analyze calendar --iterations=N` lists."""
    return etcd_backup.calendar_interval(str(analyze_output or ""))


def etcd_private_address(address: Any) -> bool:
    """True for a loopback or private (RFC 1918, ULA, link-local) IP address; never 0.0.0.0 or ::."""
    import ipaddress
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    return (ip.is_private or ip.is_loopback) and not ip.is_unspecified


def etcd_file_sha256(path: Any) -> str:
    """SHA-256 of a controller file, '' when it is missing."""
    return etcd_files.file_sha256(str(path))


def etcd_links(names: Sequence[str], target_dir: str, link_dir: str) -> list[dict[str, str]]:
    """etcd_files entries linking link_dir/<name> to target_dir/<name> for each name."""
    return [{"path": "%s/%s" % (link_dir, n), "state": "link", "src": "%s/%s" % (target_dir, n)} for n in names]


def etcd_pem_subjects(pem: str) -> list[str]:
    """The common names of the certificates in a PEM file or bundle, in order."""
    if etcd_pki.CRYPTOGRAPHY_ERROR:
        raise AnsibleFilterError("on the controller: " + etcd_pki.CRYPTOGRAPHY_ERROR)
    try:
        return [etcd_pki.common_name(c) for c in etcd_pki.load_bundle(pem)]
    except ValueError as e:
        raise AnsibleFilterError("not a PEM certificate bundle: %s" % e)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "etcd_version_problem": etcd_version_problem,
            "etcd_version_warnings": etcd_version_warnings,
            "etcd_version_facts": etcd_version_facts,
            "etcd_arch": etcd_arch,
            "etcd_backdated_not_before": etcd_backdated_not_before,
            "etcd_pem_subjects": etcd_pem_subjects,
            "etcd_file_sha256": etcd_file_sha256,
            "etcd_links": etcd_links,
            "etcd_tarball": etcd_tarball,
            "etcd_release_checksum": etcd_release_checksum,
            "etcd_preflight_report": etcd_preflight_report,
            "etcd_timing_problems": etcd_timing_problems,
            "etcd_port_problems": etcd_port_problems,
            "etcd_rbac_problems": etcd_rbac_problems,
            "etcd_tls_problems": etcd_tls_problems,
            "etcd_health_problems": etcd_health_problems,
            "etcd_status_problems": etcd_status_problems,
            "etcd_directory_problems": etcd_directory_problems,
            "etcd_config_extra_problems": etcd_config_extra_problems,
            "etcd_initial_cluster": etcd_initial_cluster,
            "etcd_member_config": etcd_member_config,
            "etcd_rolling_order": etcd_rolling_order,
            "etcd_volume_plan": etcd_volume_plan,
            "etcd_calendar_interval": etcd_calendar_interval,
            "etcd_private_address": etcd_private_address,
        }
