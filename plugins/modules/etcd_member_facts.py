#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: read what a host already has of an etcd member (read-only)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_member_facts
short_description: Read the local etcd installation, data and service state of a host
description:
  - Reports, in one round trip, what preflight and the roles need to know before they change
    anything - the installed etcd version, whether the data directory already holds a member,
    whether the etcd service is running, whether the Python cryptography library that
    member key generation needs is present, free space for the data, listening TCP ports and
    whether the clock is synchronised.
  - Never changes anything.
extends_documentation_fragment:
  - controlplane.etcd.read_only
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
options:
  bin_dir:
    description: Folder holding the C(etcd) binary (or the link to it).
    type: path
    default: /usr/local/bin
  data_dir:
    description: etcd data directory.
    type: path
    default: /var/lib/etcd
  service:
    description: systemd unit name of etcd.
    type: str
    default: etcd
  config_file:
    description: etcd's configuration file, read for the Raft timeouts the member runs with.
    type: path
    default: /etc/etcd/etcd.conf.yml
  paths:
    description:
      - Paths whose filesystem to identify (for example the backup folder), existing or not.
      - A path that does not exist yet is looked up through its nearest existing parent.
    type: list
    elements: path
    default: []
  checksum_paths:
    description:
      - Files to hash (SHA-256), such as the versioned etcd binaries, so an install step can
        skip copying files the host already has. A missing file hashes to an empty string.
    type: list
    elements: path
    default: []
  ca_file:
    description: The CA certificate the member trusts, returned as RV(ca_certificate) (public; read as is).
    type: path
  packages:
    description:
      - Debian packages whose installed version to report (read from the dpkg database), so
        a role can skip its package task when the package is there.
    type: list
    elements: str
    default: []
requirements:
  - systemd on the managed host (for the service state)
"""

EXAMPLES = r"""
- name: Read what this host already has
  controlplane.etcd.etcd_member_facts:
    bin_dir: /usr/local/bin
    data_dir: /var/lib/etcd
  register: member

- name: Refuse to provision over a running different version
  ansible.builtin.assert:
    that: member.installed_version in ['', etcd_version]
"""

RETURN = r"""
installed_version:
  description: Version printed by C(etcd --version), or an empty string when etcd is absent.
  returned: always
  type: str
  sample: 3.5.30
initialized:
  description: True when the data directory already holds a member (a C(member) folder).
  returned: always
  type: bool
service_active:
  description: True when the etcd unit is active.
  returned: always
  type: bool
python_cryptography:
  description: True when the host's Python can import the cryptography library.
  returned: always
  type: bool
free_bytes:
  description: Free bytes on the filesystem that holds (or will hold) the data directory.
  returned: always
  type: int
listening_ports:
  description: TCP ports something listens on (from /proc/net/tcp and tcp6).
  returned: always
  type: list
  elements: int
clock_synchronized:
  description: C(yes) or C(no) from systemd's NTPSynchronized, or C(unknown) where it cannot be read.
  returned: always
  type: str
running_timeouts:
  description:
    - C(heartbeat_interval) and C(election_timeout) (ms) from O(config_file), each only where set.
    - Empty when there is no configuration yet.
  returned: always
  type: dict
  sample: {"heartbeat_interval": 100, "election_timeout": 1500}
bootstrap:
  description:
    - C(initial_cluster) and C(initial_cluster_state) from O(config_file), each only where set.
    - etcd reads them only when it starts without data, so a member keeps the ones it started with
      (a member that joined a running cluster has its own).
  returned: always
  type: dict
  sample: {"initial_cluster": "etcd-1=https://10.0.0.1:2380", "initial_cluster_state": "new"}
checksums:
  description: SHA-256 of each of I(checksum_paths), an empty string for a missing file.
  returned: always
  type: dict
  sample: {"/opt/etcd/v3.5.30/etcd": "9f2c..."}
ca_certificate:
  description: PEM text of O(ca_file), an empty string when there is none.
  returned: always
  type: str
packages:
  description:
    - Installed version of each of I(packages), an empty string when it is not installed.
    - Empty when the host has no dpkg database (the roles then run their package tasks).
  returned: always
  type: dict
  sample: {"prometheus-node-exporter": "1.5.0-1+b6", "fio": ""}
filesystem_ids:
  description: Device number of the filesystem holding each of I(paths) and of I(data_dir).
  returned: always
  type: dict
  sample: {"/var/lib/etcd": 66306, "/var/backups/etcd": 66305}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_config import running_timeouts
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_files import file_sha256
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_membership import bootstrap_settings
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import installed_version_from_output


def existing_parent(path: str) -> str:
    """The path itself or its nearest existing parent: where it is, or would be created."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return path or "/"


def free_bytes(path: str) -> int:
    stats = os.statvfs(existing_parent(path))
    return stats.f_bavail * stats.f_frsize


def listening_ports() -> list:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def read_small(path, limit: int = 64 * 1024) -> str:
    """A small public text file (a CA certificate), '' when absent or too large."""
    if not path or not os.path.isfile(path) or os.path.getsize(path) > limit:
        return ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def dpkg_versions(names: list, status_file: str = "/var/lib/dpkg/status") -> dict:
    """Installed versions from dpkg's database; {} when there is none (not Debian)."""
    try:
        with open(status_file, encoding="utf-8", errors="replace") as handle:
            stanzas = handle.read().split("\n\n")
    except OSError:
        return {}
    found = {name: "" for name in names}
    for stanza in stanzas:
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") in found and fields.get("Status", "").endswith(" installed"):
            found[fields["Package"]] = fields.get("Version", "")
    return found


def clock_state(module: AnsibleModule) -> str:
    timedatectl = module.get_bin_path("timedatectl")
    if not timedatectl:
        return "unknown"
    rc, out, _err = module.run_command([timedatectl, "show", "-p", "NTPSynchronized", "--value"])
    return out.strip() if rc == 0 and out.strip() in ("yes", "no") else "unknown"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            bin_dir=dict(type="path", default="/usr/local/bin"),
            data_dir=dict(type="path", default="/var/lib/etcd"),
            service=dict(type="str", default="etcd"),
            config_file=dict(type="path", default="/etc/etcd/etcd.conf.yml"),
            paths=dict(type="list", elements="path", default=[]),
            checksum_paths=dict(type="list", elements="path", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            ca_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    etcd = os.path.join(module.params["bin_dir"], "etcd")
    version = ""
    if os.access(etcd, os.X_OK):
        rc, out, err = module.run_command([etcd, "--version"])
        version = installed_version_from_output(out) if rc == 0 else ""

    active = False
    systemctl = module.get_bin_path("systemctl")
    if systemctl:
        rc, out, _err = module.run_command([systemctl, "is-active", module.params["service"]])
        active = out.strip() == "active"

    try:
        import cryptography  # noqa: F401  pylint: disable=unused-import

        has_cryptography = True
    except ImportError:
        has_cryptography = False

    timeouts, bootstrap = {}, {}
    if os.path.isfile(module.params["config_file"]):
        with open(module.params["config_file"], encoding="utf-8", errors="replace") as config:
            text = config.read()
        timeouts, bootstrap = running_timeouts(text), bootstrap_settings(text)

    module.exit_json(
        changed=False,
        running_timeouts=timeouts,
        bootstrap=bootstrap,
        free_bytes=free_bytes(module.params["data_dir"]),
        listening_ports=listening_ports(),
        clock_synchronized=clock_state(module),
        installed_version=version,
        initialized=os.path.isdir(os.path.join(module.params["data_dir"], "member")),
        service_active=active,
        python_cryptography=has_cryptography,
        checksums={p: file_sha256(p) for p in module.params["checksum_paths"]},
        ca_certificate=read_small(module.params["ca_file"]),
        packages=dpkg_versions(module.params["packages"]) if module.params["packages"] else {},
        filesystem_ids={p: os.stat(existing_parent(p)).st_dev
                        for p in [module.params["data_dir"]] + module.params["paths"]},
    )


if __name__ == "__main__":
    main()
