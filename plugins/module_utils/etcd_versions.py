# -*- coding: utf-8 -*-
"""etcd version rules shared by filters, modules and tests.

Every fact here comes from etcd's changelogs and help text (see the README's
"Version rules" section); keep it the one place that knows them.
"""
from __future__ import annotations

import re
from typing import NamedTuple, Optional

# Minor versions this toolkit can render a configuration for.
SUPPORTED_MINORS = ((3, 4), (3, 5), (3, 6))

# Release-tarball architectures published upstream, keyed by what Ansible
# reports as ansible_architecture.
ARCH_MAP = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return "%d.%d.%d" % self

    @property
    def minor_line(self) -> str:
        return "%d.%d" % (self.major, self.minor)


def parse_version(value: object) -> Version:
    """Parse '3.5.30' or 'v3.5.30'; raise ValueError on anything else."""
    match = _VERSION_RE.match(str(value).strip())
    if not match:
        raise ValueError(
            "etcd version %r is not of the form 3.MINOR.PATCH (for example 3.5.30)" % (value,)
        )
    return Version(*(int(part) for part in match.groups()))


def version_problem(value: object) -> Optional[str]:
    """Return why a version cannot be deployed, or None when it can."""
    try:
        version = parse_version(value)
    except ValueError as exc:
        return str(exc)
    if str(value) != str(version):
        # Paths, links and the checksum lookup use the exact string; '3.5.030' or 'v3.5.30'
        # would name a release folder that does not exist or differs from the installed one.
        return ("etcd_version %r is not written the way etcd names its releases: set it to %s (no 'v', "
                "no leading zeros, no spaces)" % (value, version))
    if (version.major, version.minor) not in SUPPORTED_MINORS:
        return (
            "etcd %s is not supported: this toolkit renders configuration for 3.4, 3.5 and 3.6 only; "
            "set etcd_version to a 3.4.x, 3.5.x or 3.6.x release" % (version,)
        )
    return None


def version_warnings(value: object) -> list[str]:
    """Non-fatal advice about a deployable version."""
    version = parse_version(value)
    warnings = []
    if version.minor_line == "3.5" and version.patch <= 2:
        warnings.append(
            "etcd %s has a known data-corruption bug under load (fixed in 3.5.3+); "
            "upstream says 3.5.0-3.5.2 are not for production: use 3.5.6 or newer" % (version,)
        )
    elif version.minor_line == "3.5" and version.patch < 6:
        warnings.append("etcd %s is below upstream's production minimum 3.5.6" % (version,))
    if not peer_allowed_cn_form(version):
        warnings.append(
            "etcd %s cannot limit its peer port to member certificates from a config file (allowed-cn arrived "
            "in 3.5.14): any certificate from the CA is taken on the peer port; upgrade to 3.5.14 or newer"
            % (version,)
        )
    if version.minor_line == "3.4":
        if version.patch < 22:
            warnings.append("etcd %s is below upstream's production minimum 3.4.22" % (version,))
        warnings.append("etcd 3.4 reached end of life upstream; plan the upgrade to 3.5")
    return warnings


def arch_for(machine: str) -> str:
    """Map ansible_architecture to the release-tarball architecture."""
    try:
        return ARCH_MAP[machine]
    except KeyError:
        raise ValueError(
            "architecture %r has no official etcd release; supported: %s"
            % (machine, ", ".join(sorted(set(ARCH_MAP.values()))))
        )


def at_least(version: Version, minor_line: str, patch: int) -> bool:
    """True when version is in minor_line ('3.5') with patch >= patch, or in a later minor."""
    major, minor = (int(part) for part in minor_line.split("."))
    if (version.major, version.minor) != (major, minor):
        return (version.major, version.minor) > (major, minor)
    return version.patch >= patch


def supports_tls_min_version(version: Version) -> bool:
    # --tls-min-version arrived in 3.4.25 and 3.5.8 (backports), and is in 3.6.
    if version.minor_line == "3.4":
        return version.patch >= 25
    return at_least(version, "3.5", 8)


def peer_allowed_cn_form(version: Version) -> str:
    """How the YAML file can restrict the peer port to one CN: 'list', 'string' or '' (cannot).

    The config file's transport blocks read allowed-cn from 3.5.14 (a string), a list from
    3.5.15; 3.4 and 3.5.0-3.5.13 ignore it there (and ignore every flag when a file is used).
    """
    if at_least(version, "3.5", 15):
        return "list"
    if at_least(version, "3.5", 14):
        return "string"
    return ""


def has_etcdutl(version: Version) -> bool:
    # etcdutl ships in release tarballs from 3.5.0; 3.4 restores with etcdctl.
    return at_least(version, "3.5", 0)


def has_livez(version: Version) -> bool:
    # /livez and /readyz were backported to 3.4.29 and 3.5.11.
    if version.minor_line == "3.4":
        return version.patch >= 29
    return at_least(version, "3.5", 11)


def default_snapshot_count(version: Version) -> int:
    # 3.6 lowered the default from 100000 to 10000 to cut memory use.
    return 10000 if at_least(version, "3.6", 0) else 100000


def tarball_name(version: Version, arch: str) -> str:
    return "etcd-v%s-linux-%s.tar.gz" % (version, arch)


def installed_version_from_output(text: str) -> str:
    """Version from `etcd --version` output ('etcd Version: 3.5.30' first line), or ''."""
    for line in text.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return ""
