#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: restore a snapshot into a throwaway cluster on this host's loopback, check it, tear it down."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_drill
short_description: Restore drill - a snapshot restored into a scratch cluster on loopback, checked and torn down
description:
  - The engine of C(playbooks/restore-drill.yml). Runs as root on a drill host that has the etcd
    binaries of the production version in O(bin_dir) and the snapshot already copied and checked.
  - Makes C(<work_dir>/run-<UTC time>) (mode 0700, owned by O(owner)), a throwaway CA kept in
    memory only, one certificate for the scratch members (CN C(<cluster>-drill), IP 127.0.0.1)
    and one client certificate (CN C(root), the etcd user it authenticates as when
    the restored data has authentication on).
  - Restores the snapshot into O(members) scratch members (C(etcdutl snapshot restore) on 3.5+,
    C(etcdctl) on 3.4, no revision bump) named C(drill-<i>), with the token
    C(<cluster>-drill-<time>), and starts them all at once as O(owner). Member I(i) listens on
    127.0.0.1 only, client port O(base_port) + 10 I(i) and peer port O(base_port) + 10 I(i) + 1,
    every listener TLS with client-certificate authentication against the throwaway CA.
    Production members trust another CA and cannot reach a loopback address of this host, so the
    scratch cluster and production can never talk to each other.
  - Checks every member over mutual TLS - its revision is O(expected_revision), it holds
    O(expected_keys) live keys (its own serializable answer), all members agree on
    C(endpoint hashkv), and every key of O(expected_present) exists - and names each problem
    with the member, the check and what was seen.
  - Always tears the scratch cluster down (SIGTERM, SIGKILL after 10 s) and removes its run
    folder; nothing else is deleted.
  - Writes the report (JSON) to O(report_file), keeps the failure counter and the last success
    in O(state_file), and writes Prometheus metrics to
    C(<textfile_dir>/etcd_restore_drill.prom) when that folder exists.
  - Fails, with the report, when a check fails.
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
attributes:
  check_mode:
    support: full
    description: Returns the plan (folders, ports, token, files) and makes, starts and writes nothing.
  diff_mode:
    support: none
    description: Nothing to compare; the drill always runs.
options:
  snapshot:
    description: The snapshot file on this host (already copied and checked against O(sha256)).
    type: path
    required: true
  sha256:
    description: The snapshot's SHA-256; the file is checked against it again before the drill.
    type: str
    required: true
  expected_revision:
    description: The snapshot's revision (C(etcd_snapshot_info)'s C(revision)).
    type: int
    required: true
  expected_keys:
    description:
      - Live keys in the snapshot (C(etcd_snapshot_info)'s C(live_keys)).
      - Every scratch member must hold exactly this many keys. The file is also read offline here and
        a different figure is reported as a problem of the input rather than of the restore.
    type: int
    required: true
  version:
    description:
      - The etcd version of the binaries in O(bin_dir).
      - Chooses the restore tool, C(etcdutl) (3.5+) or C(etcdctl) (3.4).
    type: str
    required: true
  bin_dir:
    description: Folder holding C(etcd), C(etcdctl) and, for 3.5+, C(etcdutl).
    type: path
    default: /usr/local/bin
  cluster:
    description: The production cluster's name; the scratch cluster is C(<cluster>-drill).
    type: str
    required: true
  members:
    description: How many scratch members to restore and start.
    type: int
    default: 3
  base_port:
    description:
      - Member I(i) (from 1) uses 127.0.0.1 ports O(base_port) + 10 I(i) (client) and
        O(base_port) + 10 I(i) + 1 (peer).
    type: int
    default: 23790
  work_dir:
    description: Folder for the run folders, the report and the state; created (0755) when missing.
    type: path
    default: /var/lib/etcd-drill
  expected_present:
    description: Keys that must exist in the restored data (for example C(/registry/namespaces/kube-system)).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds for every scratch member to answer C(endpoint health) after the start.
    type: int
    default: 300
  owner:
    description: System account the scratch members run as; it owns the run folder and its keys.
    type: str
    default: etcd
  taken:
    description:
      - When the snapshot was taken, as epoch seconds or an ISO 8601 time, for the RPO.
      - By default it is read from the file name the backup job gives (C(etcd-<cluster>-<UTC time>-r<revision>.db)).
    type: str
  textfile_dir:
    description: node_exporter's textfile folder; the metrics are written there only when it exists.
    type: path
    default: /var/lib/prometheus/node-exporter
  max_age:
    description:
      - Seconds after the last successful drill at which C(EtcdRestoreDrillStale) fires; published
        as C(etcd_restore_drill_max_age_seconds) so the alert rule stays the same for every cluster.
    type: int
    default: 604800
  state_file:
    description: Failure counter and last success kept between runs. Default C(<work_dir>/state.json).
    type: path
  report_file:
    description: The last run's report (JSON). Default C(<work_dir>/last-report.json).
    type: path
notes:
  - A 3-member drill of a small snapshot takes about 2 seconds; the start, the checks and the
    teardown grow with the database (each member restores its own copy).
  - A drill killed from outside (not by a failed check) may leave its scratch members running; the
    next drill then reports the ports in use and names C(<work_dir>/run-*) to look at.
  - Metrics (label C(cluster)) - C(etcd_restore_drill_last_run_timestamp_seconds),
    C(etcd_restore_drill_last_success_timestamp_seconds), C(etcd_restore_drill_success),
    C(etcd_restore_drill_rto_seconds) and C(etcd_restore_drill_rpo_seconds) (of the last successful
    drill), C(etcd_restore_drill_failures_total).
"""

EXAMPLES = r"""
- name: Restore the pinned snapshot into a scratch cluster, check it and tear it down
  controlplane.etcd.etcd_drill:
    snapshot: /var/lib/etcd-drill/incoming/etcd-prod-20261203T070000Z-r4211.db
    sha256: "{{ pinned_sha256 }}"
    expected_revision: 4211
    expected_keys: 1187
    expected_present: [/registry/namespaces/kube-system]
    version: 3.5.30
    cluster: prod
    owner: etcd-drill
  register: drill

- name: Show the drill
  ansible.builtin.debug:
    msg: "{{ drill.table.split('\n') }}"
"""

RETURN = r"""
ok:
  description: Whether every check passed.
  returned: always (not in check mode)
  type: bool
cluster:
  description: The production cluster's name.
  returned: always (not in check mode)
  type: str
snapshot:
  description: The snapshot's file name.
  returned: always (not in check mode)
  type: str
  sample: etcd-prod-20261203T070000Z-r4211.db
sha256:
  description: The snapshot's SHA-256.
  returned: always (not in check mode)
  type: str
taken:
  description: When the snapshot was taken (ISO 8601, UTC); V(null) when not known.
  returned: always (not in check mode)
  type: str
  sample: "2026-12-03T07:00:00Z"
revision:
  description: The expected revision.
  returned: always (not in check mode)
  type: int
keys:
  description: The expected live key count.
  returned: always (not in check mode)
  type: int
members:
  description: Scratch members.
  returned: always (not in check mode)
  type: int
restore_seconds:
  description: Time of all the members' restores; V(null) when they did not finish.
  returned: always (not in check mode)
  type: float
start_seconds:
  description: From the start of the members until every one answered C(endpoint health); V(null) when they did not.
  returned: always (not in check mode)
  type: float
rto_seconds:
  description: RV(restore_seconds) + RV(start_seconds); the copy of the snapshot is not included.
  returned: always (not in check mode)
  type: float
rpo_seconds:
  description: The snapshot's age when the drill started; V(null) when RV(taken) is not known.
  returned: always (not in check mode)
  type: float
problems:
  description: What failed, each naming the member, the check and what was seen; empty when RV(ok).
  returned: always
  type: list
  elements: str
started:
  description: When the drill started (ISO 8601, UTC).
  returned: always (not in check mode)
  type: str
finished:
  description: When the drill finished, torn down (ISO 8601, UTC).
  returned: always (not in check mode)
  type: str
readings:
  description:
    - Per scratch member - revision, keys, hash (hashkv), leader, missing (keys of
      O(expected_present) it does not hold), errors.
  returned: always (not in check mode)
  type: dict
report:
  description: The report as written to O(report_file) (every field above).
  returned: always (not in check mode)
  type: dict
table:
  description: The report as plain text, one row per scratch member.
  returned: always (not in check mode)
  type: str
plan:
  description:
    - Check mode only - run folder, token, members (names, URLs, folders), tool, report,
      state and metrics files.
  returned: check mode
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_drill import check_plan, drill
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_pki import CRYPTOGRAPHY_ERROR
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import Etcdctl


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            snapshot=dict(type="path", required=True), sha256=dict(type="str", required=True),
            expected_revision=dict(type="int", required=True), expected_keys=dict(type="int", required=True, no_log=False),
            version=dict(type="str", required=True), bin_dir=dict(type="path", default="/usr/local/bin"),
            cluster=dict(type="str", required=True), members=dict(type="int", default=3),
            base_port=dict(type="int", default=23790), work_dir=dict(type="path", default="/var/lib/etcd-drill"),
            expected_present=dict(type="list", elements="str", default=[]), timeout=dict(type="int", default=300),
            owner=dict(type="str", default="etcd"), taken=dict(type="str"),
            textfile_dir=dict(type="path", default="/var/lib/prometheus/node-exporter"),
            max_age=dict(type="int", default=604800),
            state_file=dict(type="path"), report_file=dict(type="path")),
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(**check_plan(module.params))
    if CRYPTOGRAPHY_ERROR:
        module.fail_json(msg=CRYPTOGRAPHY_ERROR)
    # etcdctl refuses to run when a flag it is given is also in the environment.
    for name in Etcdctl.clashing_env(os.environ):
        del os.environ[name]
    try:
        result = drill(module.params, run=module.run_command)
    except (OSError, ValueError) as e:
        module.fail_json(msg="the drill's report could not be written: %s" % e)
    table = result.pop("table")
    # The report's fields at the top, and the report itself (the role keeps it on the controller).
    out = dict(result)
    out.update(changed=True, report=dict(result), table=table)
    if not result["ok"]:
        module.fail_json(msg="restore drill of %s failed: %s" % (result["cluster"], "; ".join(result["problems"])),
                         **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
