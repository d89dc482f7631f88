"""Test harness shared by the molecule scenarios: real SSH, real ansible-playbook runs.

Each scenario's conftest.py puts this folder on sys.path and calls `configure` with its
own inventory folder and member addresses.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[2]))
KEY = PROJECT / ".lab" / "ssh" / "id_ed25519"
PKI = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "pki"

MEMBERS: Dict[str, str] = {}
INVENTORY = Path()

# Everything provisioning manages, plus the running process: any change shows here.
SNAPSHOT = (
    "sha256sum /etc/etcd/etcd.conf.yml /etc/etcd/etcdctl.env /etc/etcd/pki/* /etc/systemd/system/etcd.service "
    "/etc/profile.d/etcdctl.sh /opt/etcd/*/* /etc/fstab /etc/etcd-backup/config.json /etc/etcd-backup/pki/* "
    "/etc/systemd/system/etcd-backup.* /usr/local/sbin/etcd-backup /usr/local/lib/etcd-backup/ansible_collections/controlplane/etcd/plugins/module_utils/* "
    "/etc/default/prometheus-node-exporter /etc/prometheus/node-exporter-web.yml; "
    "stat -c '%n %a %U %G %Y' /etc/etcd /etc/etcd/* /etc/etcd/pki/* /opt/etcd /opt/etcd/* /var/lib/etcd "
    "/usr/local/bin/etcd*; "
    "readlink /usr/local/bin/etcd /usr/local/bin/etcdctl; findmnt -rno SOURCE,TARGET,OPTIONS /var/lib/etcd; "
    "systemctl show -p MainPID -p ActiveEnterTimestamp -p NRestarts etcd; getent passwd etcd"
)


def configure(members: Mapping[str, str], inventory: Path, others: Sequence[str] = ()) -> None:
    """Set the scenario's members (name -> address) and inventory; `others`: its other hosts' addresses."""
    MEMBERS.clear()
    MEMBERS.update(members)
    global INVENTORY
    INVENTORY = inventory
    close_control_masters([*members.values(), *others])


def close_control_masters(addresses: Sequence[str]) -> None:
    """End the SSH connections converge left open to these hosts.

    Molecule's ansible.cfg sets a control_path, and testinfra reuses it: with converge's
    masters alive, a test could pass on a connection it could not open itself. Closing them
    makes every test connect and authenticate on its own.
    """
    folder = Path(os.path.expanduser("~/.ansible/cp"))
    for sock in folder.glob("*") if folder.is_dir() else []:
        if any(sock.name.startswith(address + "-") for address in addresses):
            subprocess.run(["ssh", "-o", "ControlPath=" + str(sock), "-O", "exit", "closing"],
                           capture_output=True, timeout=30, check=False)
            # The master removes its own socket as it exits, sometimes just after "exit"
            # returns: gone by now is fine (an unlink after an exists() check raced it in CI).
            sock.unlink(missing_ok=True)


def ssh(member: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command on a member (by name) or any lab host (by address) as `ops`."""
    return subprocess.run(
        ["ssh", "-i", str(KEY), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "ops@" + MEMBERS.get(member, member), command],
        capture_output=True, text=True, timeout=120, check=check,
    )


def snapshot() -> Dict[str, str]:
    return {name: ssh(name, "sudo sh -c \"%s\"" % SNAPSHOT, check=False).stdout for name in MEMBERS}


def etcdctl_json(member: str, args: str):
    return json.loads(ssh(member, "sudo -i etcdctl %s -w json" % args).stdout)


def leader_name() -> str:
    """Name of the member the cluster follows now, asked through the first member."""
    first = next(iter(MEMBERS))
    statuses = etcdctl_json(first, "endpoint status --cluster")
    members = etcdctl_json(first, "member list")["members"]
    leader = statuses[0]["Status"]["leader"]
    return next(m["name"] for m in members if m["ID"] == leader)


def cluster_healthy(member: str) -> bool:
    result = ssh(member, "sudo -i etcdctl endpoint health --cluster -w json", check=False)
    if result.returncode != 0:
        return False
    health = json.loads(result.stdout)
    return len(health) == len(MEMBERS) and all(h["health"] for h in health)


def run_site(tmp_path: Path, hosts: Mapping[str, Mapping[str, str]], *extra: str,
             playbook: str = "site", drill_hosts: Sequence[str] = (),
             groups: Optional[Mapping[str, Sequence[str]]] = None) -> subprocess.CompletedProcess:
    """Run controlplane.etcd.site (or another playbook) against a custom inventory of the scenario's hosts.

    The collection is whichever copy the scenario's ANSIBLE_COLLECTIONS_PATH holds (the
    checkout, or the installed artifact), exactly as an operator would run it.
    """
    argv, env = playbook_command(tmp_path, hosts, *extra, playbook=playbook, drill_hosts=drill_hosts, groups=groups)
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env, cwd=str(PROJECT))


def playbook_command(tmp_path: Path, hosts: Mapping[str, Mapping[str, str]], *extra: str,
                     playbook: str = "site", drill_hosts: Sequence[str] = (),
                     groups: Optional[Mapping[str, Sequence[str]]] = None) -> Tuple[List[str], Dict[str, str]]:
    """(argv, environment) of run_site's ansible-playbook run, for a test that watches it live.

    Per-host overrides are merged into copies of the scenario's host_vars files (host_vars
    files beat variables written inline in an inventory, so they must go there). drill_hosts
    (scenario host names) form the etcd_drill group; groups adds other groups (name -> hosts), such
    as etcd_retired.
    """
    # A folder per run: a test may run several playbooks.
    tmp_path.mkdir(parents=True, exist_ok=True)
    inventory = Path(tempfile.mkdtemp(prefix="inventory-", dir=str(tmp_path)))
    (inventory / "host_vars").mkdir()
    lines = ["all:", "  children:", "    etcd:", "      hosts:"]
    others = {name: list(members) for name, members in (groups or {}).items()}
    every = {h: {} for members in [drill_hosts, *others.values()] for h in members}
    every.update(hosts)
    lines += ["        %s: {}" % host for host in hosts]
    if drill_hosts:
        lines += ["    etcd_drill:", "      hosts:"] + ["        %s: {}" % host for host in drill_hosts]
    for name, members in others.items():
        lines += ["    %s:" % name, "      hosts:"] + ["        %s: {}" % host for host in members]
    for host, overrides in every.items():
        source = INVENTORY / "host_vars" / ("%s.yml" % host)
        variables = yaml.safe_load(source.read_text()) if source.exists() else {}
        variables.update(overrides)
        (inventory / "host_vars" / ("%s.yml" % host)).write_text(yaml.safe_dump(variables))
    (inventory / "hosts.yml").write_text("\n".join(lines) + "\n")
    (inventory / "group_vars").symlink_to(INVENTORY / "group_vars")
    env = dict(os.environ, ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")
    return (["ansible-playbook", "-i", str(inventory), "--private-key", str(KEY), "controlplane.etcd." + playbook,
             *extra], env)
