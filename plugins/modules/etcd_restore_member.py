#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: one member's part of a full-cluster restore, resumable after a kill."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_restore_member
short_description: Move one stopped member's data aside and restore a snapshot in its place
description:
  - One member's part of C(playbooks/restore.yml). etcd must already be stopped on this host.
  - Renames the member folder (C(<data_dir>/member)) and, with a separate WAL, the WAL folder
    aside to C(<path>.before-restore-<UTC time>) on the same volume; nothing is deleted.
  - Restores the snapshot into a scratch folder beside them (C(etcdctl snapshot restore) on 3.4,
    C(etcdutl) on 3.5+) with the given membership and token, hands it to etcd's account, and
    renames it into place.
  - Each step is recorded in O(state_dir) before it acts, so a run killed at any point is
    finished by running again; a re-run after success changes nothing.
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
attributes:
  check_mode:
    support: full
    description: Reports what would be moved and restored.
  diff_mode:
    support: none
    description: Folders are moved, not files changed.
options:
  state:
    description:
      - V(restored) does this member's restore (or finishes an interrupted one), and sets up its
        first start without etcd's initial corruption check (a systemd drop-in and a copy of
        O(config_file)), since members started together would wait out that check's peer timeouts.
      - V(verified) records that the whole cluster was checked afterwards and removes that
        first-start override (systemd reloaded; etcd keeps running).
      - V(held) writes the hold file (etcd must not start while it exists) and the systemd
        drop-in that makes it so, then stops the O(stop) units that run.
      - V(released) removes the hold file, reloads systemd and starts etcd without waiting
        (members of a restored cluster report ready only once a quorum exists).
      - V(running) removes the first-start override once etcd runs on every member (systemd
        reloaded), so a later start (a crash, a reboot, a configuration change) checks again.
      - V(read) only returns the recorded state.
    type: str
    choices: [held, restored, released, running, verified, read]
    default: restored
  sha256:
    description: SHA-256 of the pinned snapshot; names the state record.
    type: str
    required: true
  snapshot:
    description: The snapshot's path on this host (already verified there).
    type: path
  stamp:
    description: UTC time for the aside folders' names; a resumed restore keeps its first one.
    type: str
    default: ""
  data_dir:
    description: etcd's data directory (the volume's mount point with a dedicated volume).
    type: path
  wal_dir:
    description: etcd's C(wal-dir), empty when the WAL lives inside the member folder.
    type: str
    default: ""
  version:
    description: etcd version installed on this host (chooses etcdctl or etcdutl and the revision bump).
    type: str
  bin_dir:
    description: Folder holding etcdctl and etcdutl.
    type: path
    default: /usr/local/bin
  name:
    description: This member's name.
    type: str
  peer_url:
    description: This member's advertised peer URL.
    type: str
  initial_cluster:
    description: The whole membership, C(name=peer URL) joined by commas, identical on every member.
    type: str
  token:
    description: The restored cluster's new C(initial-cluster-token), identical on every member.
    type: str
  bump_revision:
    description: Revisions to add, with C(--mark-compacted); 0 or a version without the flags skips it.
    type: int
    default: 0
  owner:
    description: etcd's system account, which gets the restored folders.
    type: str
    default: etcd
  state_dir:
    description: Where each restore's progress is recorded (root only).
    type: path
    default: /var/lib/etcd-restore
  config_file:
    description: etcd's configuration file, copied for the first start.
    type: path
    default: /etc/etcd/etcd.conf.yml
  dropin_dir:
    description: Folder of etcd's systemd drop-ins.
    type: path
    default: /etc/systemd/system/etcd.service.d
  stop:
    description: Units V(held) stops when they run, in one C(systemctl stop).
    type: list
    elements: str
    default: [etcd-backup.timer, etcd-backup.service, etcd.service]
"""

EXAMPLES = r"""
- name: Restore this member from the pinned snapshot
  controlplane.etcd.etcd_restore_member:
    sha256: "{{ pinned_sha256 }}"
    snapshot: /var/lib/etcd-restore/etcd-prod-20260101T000000Z-r1234.db
    stamp: "20260101T010000Z"
    data_dir: /var/lib/etcd
    version: 3.5.30
    name: etcd-1
    peer_url: https://10.0.0.1:2380
    initial_cluster: etcd-1=https://10.0.0.1:2380,etcd-2=https://10.0.0.2:2380,etcd-3=https://10.0.0.3:2380
    token: prod-restore-0123456789abcdef
    bump_revision: 1000000000
"""

RETURN = r"""
phase:
  description: Recorded phase afterwards (C(restored), C(verified); empty when none is recorded).
  returned: always
  type: str
stamp:
  description: UTC time used in the aside folders' names.
  returned: always
  type: str
aside:
  description: Where the old member (and WAL) folder is, or would be, kept.
  returned: always
  type: list
  elements: str
actions:
  description: What this run did (or would do, in check mode).
  returned: always
  type: list
  elements: str
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_restore import (
    RestoreError, mark_verified, read_state, remove_first_start, restore_argv, restore_member, write_first_start,
    write_hold, HOLD_FILE)


def _owner(user: str):
    uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(user).gr_gid

    def own(top: str) -> None:
        for root, dirs, files in os.walk(top):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.lchown(name, uid, gid)
    return own


def _hold(module: AnsibleModule) -> dict:
    p = module.params
    actions = []
    running = []
    for unit in p["stop"]:
        out = module.run_command(["systemctl", "is-active", unit])[1]
        if out.strip() in ("active", "activating", "reloading"):
            running.append(unit)
    if module.check_mode:
        actions = ["hold etcd down (%s)" % p["state_dir"]] + (["stop " + " ".join(running)] if running else [])
        return dict(changed=True, phase="", stamp="", aside=[], actions=actions)
    written = write_hold(p["state_dir"], p["sha256"], p["dropin_dir"])
    if written["guard"]:
        module.run_command(["systemctl", "daemon-reload"], check_rc=True)
    if any(written.values()):
        actions.append("held etcd down")
    if running:
        module.run_command(["systemctl", "stop"] + running, check_rc=True)
        actions.append("stopped " + " ".join(running))
    return dict(changed=bool(actions), phase="", stamp="", aside=[], actions=actions)


def _release(module: AnsibleModule) -> dict:
    p = module.params
    hold = os.path.join(p["state_dir"], HOLD_FILE)
    out = module.run_command(["systemctl", "is-active", "etcd.service"])[1]
    running = out.strip() in ("active", "activating")
    actions = (["release the hold"] if os.path.lexists(hold) else []) + ([] if running else ["start etcd"])
    if module.check_mode or not actions:
        return dict(changed=bool(actions), phase="", stamp="", aside=[], actions=actions)
    if os.path.lexists(hold):
        os.unlink(hold)
    module.run_command(["systemctl", "daemon-reload"], check_rc=True)
    if not running:
        module.run_command(["systemctl", "start", "--no-block", "etcd.service"], check_rc=True)
    return dict(changed=True, phase="", stamp="", aside=[], actions=actions)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["held", "restored", "released", "running", "verified", "read"], default="restored"),
            sha256=dict(type="str", required=True), snapshot=dict(type="path"), stamp=dict(type="str", default=""),
            data_dir=dict(type="path"), wal_dir=dict(type="str", default=""), version=dict(type="str"),
            bin_dir=dict(type="path", default="/usr/local/bin"), name=dict(type="str"), peer_url=dict(type="str"),
            initial_cluster=dict(type="str"), token=dict(type="str", no_log=False), bump_revision=dict(type="int", default=0),
            owner=dict(type="str", default="etcd"), state_dir=dict(type="path", default="/var/lib/etcd-restore"),
            config_file=dict(type="path", default="/etc/etcd/etcd.conf.yml"),
            dropin_dir=dict(type="path", default="/etc/systemd/system/etcd.service.d"),
            stop=dict(type="list", elements="str", default=["etcd-backup.timer", "etcd-backup.service", "etcd.service"])),
        required_if=[("state", "restored", ("snapshot", "stamp", "data_dir", "version", "name", "peer_url",
                                            "initial_cluster", "token"))],
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p["state"] == "read":
            state = read_state(p["state_dir"], p["sha256"])
            module.exit_json(changed=False, phase=state.get("phase", ""), stamp=state.get("stamp", ""),
                             aside=state.get("aside", []), actions=[])
        if p["state"] == "held":
            module.exit_json(**_hold(module))
        if p["state"] == "released":
            module.exit_json(**_release(module))
        if p["state"] == "running":
            removed = not module.check_mode and remove_first_start(p["config_file"], p["dropin_dir"])
            if removed:
                module.run_command(["systemctl", "daemon-reload"], check_rc=True)
            module.exit_json(changed=removed, phase="", stamp="", aside=[],
                             actions=["removed the first-start override"] if removed else [])
        if p["state"] == "verified":
            if module.check_mode:
                changed = read_state(p["state_dir"], p["sha256"]).get("phase") != "verified"
            else:
                changed = mark_verified(p["state_dir"], p["sha256"])
                if remove_first_start(p["config_file"], p["dropin_dir"]):
                    module.run_command(["systemctl", "daemon-reload"], check_rc=True)
                    changed = True
            module.exit_json(changed=changed, phase="verified", stamp="", aside=[], actions=[])

        def command(data_dir: str, wal_dir: str):
            return restore_argv(p["version"], p["bin_dir"], p["snapshot"],
                                {"name": p["name"], "data_dir": data_dir, "wal_dir": wal_dir, "peer_url": p["peer_url"]},
                                p["initial_cluster"], p["token"], p["bump_revision"])

        def run(argv):
            # etcdctl 3.4 needs the v3 API selected; a stray ETCDCTL_* variable would clash.
            env = {"ETCDCTL_API": "3"}
            return module.run_command(argv, environ_update=env)

        result = restore_member(p["state_dir"], p["sha256"], p["stamp"], p["data_dir"], p["wal_dir"],
                                command, run, _owner(p["owner"]), check_mode=module.check_mode)
        if not module.check_mode and result["phase"] == "restored":
            etcd = os.path.join(p["bin_dir"], "etcd")
            result["changed"] |= write_first_start(p["config_file"], p["dropin_dir"], etcd)
    except (RestoreError, OSError, KeyError) as e:
        module.fail_json(msg="%s: %s" % (p["name"] or "this member", e))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
