"""Bad input is refused before any host changes; each refusal names the problem and the fix.

Runs the real provisioning playbook against the converged members with a broken
inventory or variable, then proves every member is byte-for-byte and process-for-process
as it was.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import MEMBERS

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
SCENARIO_INVENTORY = Path(__file__).resolve().parents[1] / "inventory"
KEY = PROJECT / ".lab" / "ssh" / "id_ed25519"

# Everything provisioning manages, plus the running process: any change shows here.
SNAPSHOT = (
    "sha256sum /etc/etcd/etcd.conf.yml /etc/etcd/etcdctl.env /etc/etcd/pki/* /etc/systemd/system/etcd.service "
    "/etc/profile.d/etcdctl.sh /opt/etcd/*/*; "
    "stat -c '%n %a %U %G %Y' /etc/etcd /etc/etcd/* /etc/etcd/pki/* /opt/etcd /opt/etcd/* /var/lib/etcd "
    "/usr/local/bin/etcd*; "
    "readlink /usr/local/bin/etcd /usr/local/bin/etcdctl; "
    "systemctl show -p MainPID -p ActiveEnterTimestamp -p NRestarts etcd; getent passwd etcd"
)


def snapshot() -> dict[str, str]:
    state = {}
    for name, address in MEMBERS.items():
        out = subprocess.run(
            ["ssh", "-i", str(KEY), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "ops@" + address, "sudo sh -c \"%s\"" % SNAPSHOT],
            capture_output=True, text=True, timeout=60, check=True,
        )
        state[name] = out.stdout
    return state


def run_site(tmp_path: Path, hosts: dict[str, dict], *extra: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory"
    inventory.mkdir(parents=True)
    lines = ["all:", "  children:", "    etcd:", "      hosts:"]
    for host, variables in hosts.items():
        lines.append("        %s:%s" % (host, "" if variables else " {}"))
        for key, value in variables.items():
            lines.append("          %s: %s" % (key, value))
    (inventory / "hosts.yml").write_text("\n".join(lines) + "\n")
    (inventory / "group_vars").symlink_to(SCENARIO_INVENTORY / "group_vars")
    (inventory / "host_vars").symlink_to(SCENARIO_INVENTORY / "host_vars")
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(PROJECT / "playbooks" / "site.yml"), *extra],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(PROJECT),
    )


ALL = {"m1": {}, "m2": {}, "m3": {}}

CASES = {
    "even member count": (
        {"m1": {}, "m2": {}}, [], ["2 members is an even count", "etcd_allow_even_members"]),
    "duplicate address": (
        {"m1": {}, "m2": {}, "m3": {"etcd_address": "172.31.241.12"}}, [],
        ["address 172.31.241.12 is shared by m2, m3", "own etcd_address"]),
    "duplicate member name": (
        {"m1": {}, "m2": {}, "m3": {"etcd_member_name": "m2"}}, [],
        ["member name 'm2' is used by 2 hosts", "unique etcd_member_name"]),
    "unknown etcd version": (
        ALL, ["-e", "etcd_version=3.9.1"], ["etcd 3.9.1 is not supported", "set etcd_version"]),
    "malformed etcd version": (
        ALL, ["-e", "etcd_version=latest"], ["'latest' is not of the form 3.MINOR.PATCH"]),
    "unknown architecture": (
        ALL, ["-e", "etcd_arch=sparc64"], ["architecture 'sparc64'", "set etcd_arch"]),
    "version change on a running cluster": (
        ALL, ["-e", "etcd_version=3.5.16"], ["already runs etcd 3.5.30 but etcd_version is 3.5.16",
                                             "upgrade playbook"]),
    "bad variable type": (
        ALL, ["-e", "etcd_client_port=not-a-port"], ["etcd_client_port", "int"]),
    "weak CA passphrase": (
        ALL, ["-e", "etcd_ca_passphrase=short"], ["etcd_ca_passphrase must be set to at least 16"]),
    "unsafe raft timing": (
        ALL, ["-e", "etcd_heartbeat_interval=500", "-e", "etcd_election_timeout=1000"],
        ["must be at least 5 x etcd_heartbeat_interval", "2500"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_any_host_changes(case, tmp_path):
    hosts, extra, expected = CASES[case]
    before = snapshot()
    result = run_site(tmp_path, hosts, *extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, "refusal for %s should say %r:\n%s" % (case, text, output[-3000:])
    assert "changed=0" in output and not re.search(r"changed=[1-9]", output)
    assert snapshot() == before, "a refused run changed a host"
