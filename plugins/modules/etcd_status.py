#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: read etcd cluster status with etcdctl (read-only)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_status
short_description: Read etcd cluster membership, leader, versions and health
description:
  - Runs C(etcdctl member list) against O(endpoints), then C(etcdctl endpoint status) and
    C(etcdctl endpoint health) against each member's client URL one at a time, so one dead
    member cannot hide the state of the others.
  - Returns one structured status (members, leader, quorum, versions, revision, alarms,
    problems) for playbooks to act on.
  - Run it on a member host, where C(etcdctl) and the client certificates live.
  - Never changes anything; always reports RV(ignore:changed=false).
  - Learners are not sent C(endpoint health), which they always refuse
    (C(rpc not supported for learner)); their health comes from C(endpoint status) alone.
  - Works with etcdctl 3.4 and 3.5 JSON output, and reads the 3.6 status fields.
extends_documentation_fragment:
  - controlplane.etcd.etcd_client
  - controlplane.etcd.read_only
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
options:
  endpoints:
    description:
      - Client URLs used for C(member list), for example V(https://10.0.0.1:2379).
      - Give several so the list still works when one member is down.
      - If C(member list) fails (etcd 3.5 needs quorum for it), these endpoints are probed
        instead and membership is reconstructed from what answers.
    type: list
    elements: str
    required: true
  fail_on_unhealthy:
    description:
      - Fail when RV(status.healthy) is false, listing RV(status.problems) in the message.
      - The status is still returned with the failure.
    type: bool
    default: false
  details:
    description:
      - Also read the cluster version (C(/version) of the leader, over the same TLS client
        certificate) and whether authentication is on (C(auth status), or on etcdctl 3.4 a
        login with a made-up user that fails only when auth is on). Both are read-only.
      - Upgrades use them; plain status calls skip the extra round trips.
    type: bool
    default: false
  wait_member:
    description:
      - Name of a member that was just restarted. The module then polls until that member is
        healthy, has applied at least O(wait_applied_index), runs O(wait_version) (when given),
        and the cluster has a leader; or fails after O(wait_timeout) seconds naming the checks
        that still fail.
      - Between full reads one C(endpoint status) over every endpoint measures the longest
        stretch in which no member knew a leader (RV(wait.longest_leaderless_seconds)).
    type: str
  wait_applied_index:
    description: Raft applied index the member must reach (the leader's before the restart).
    type: int
    default: 0
  wait_version:
    description: Server version the member must report (empty - any).
    type: str
    default: ""
  wait_healthy:
    description:
      - Poll (every quarter second) until every member is healthy, or fail after
        O(wait_timeout) seconds with the status and its problems. For members started together,
        for example after a restore. RV(waited_seconds) says how long it took.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for O(wait_member) or O(wait_healthy).
    type: int
    default: 120
notes:
  - Member and cluster IDs are returned as lowercase hex, the form C(etcdctl member remove),
    C(member promote) and C(move-leader) take.
"""

EXAMPLES = r"""
- name: Read cluster status from the first member
  controlplane.etcd.etcd_status:
    endpoints: "{{ groups['etcd'] | map('extract', hostvars, 'etcd_client_url') | list }}"
    cacert: /etc/etcd/pki/ca.crt
    cert: /etc/etcd/pki/admin.crt
    key: /etc/etcd/pki/admin.key
  register: etcd
  run_once: true
  delegate_to: "{{ groups['etcd'][0] }}"

- name: Show it as a table
  ansible.builtin.debug:
    msg: "{{ etcd.status | etcd_status_table }}"
  run_once: true

- name: Stop the play unless every voting member is healthy and agrees on one leader
  controlplane.etcd.etcd_status:
    endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379]
    cacert: /etc/etcd/pki/ca.crt
    cert: /etc/etcd/pki/admin.crt
    key: /etc/etcd/pki/admin.key
    fail_on_unhealthy: true

- name: Move leadership away before restarting this member (IDs are already hex)
  ansible.builtin.command:
    argv:
      - /usr/local/bin/etcdctl
      - "--endpoints={{ etcd.status.members | selectattr('reachable') | map(attribute='endpoint') | join(',') }}"
      - --cacert=/etc/etcd/pki/ca.crt
      - --cert=/etc/etcd/pki/admin.crt
      - --key=/etc/etcd/pki/admin.key
      - move-leader
      - "{{ (etcd.status.members | rejectattr('is_leader') | rejectattr('is_learner')
             | selectattr('healthy') | first).id_hex }}"
  when: etcd.status.leader is not none and etcd.status.leader.name == etcd_member_name
  changed_when: true
"""

RETURN = r"""
status:
  description: Cluster status assembled from member list, endpoint status and endpoint health.
  returned: always
  type: dict
  contains:
    cluster_id:
      description: Cluster ID, lowercase hex (empty if nothing answered).
      type: str
      sample: 86807108d296772
    members:
      description: One entry per member in C(member list) order.
      type: list
      elements: dict
      contains:
        name:
          description: Member name; empty for a member that was added but never started.
          type: str
        id_hex:
          description: Member ID in lowercase hex, as C(member remove/promote) and C(move-leader) take it.
          type: str
        peer_urls:
          description: Advertised peer URLs.
          type: list
          elements: str
        client_urls:
          description: Advertised client URLs (empty until the member has started).
          type: list
          elements: str
        is_learner:
          description: Non-voting learner.
          type: bool
        started:
          description: False for a member that was added but has not joined yet.
          type: bool
        endpoint:
          description: Client URL that was probed (empty if none).
          type: str
        reachable:
          description: C(endpoint status) answered from this member.
          type: bool
        version:
          description: Server version reported by the member.
          type: str
        storage_version:
          description: Storage version (etcd 3.6+, else empty).
          type: str
        db_size:
          description: Backend database size in bytes.
          type: int
        db_size_in_use:
          description: Bytes of the backend actually in use (the rest is reclaimable by defrag).
          type: int
        db_size_quota:
          description: Backend quota in bytes (etcd 3.6+, else 0).
          type: int
        revision:
          description: MVCC revision seen by the member.
          type: int
        raft_term:
          description: Raft term.
          type: int
        raft_index:
          description: Raft index.
          type: int
        raft_applied_index:
          description: Raft applied index.
          type: int
        leader_id_hex:
          description: The leader this member follows, hex; empty if it knows none.
          type: str
        is_leader:
          description: The member is the leader.
          type: bool
        healthy:
          description:
            - Voter - status and health both succeeded and it has a leader.
            - Learner - status succeeded without errors and it has a leader.
            - Cluster-wide alarms are not held against single members.
          type: bool
        errors:
          description: Server-reported errors (including alarms), health errors, or why it was unreachable.
          type: list
          elements: str
    leader:
      description: The agreed leader (name, id_hex, endpoint), or null if none or members disagree.
      type: dict
      sample: {name: m1, id_hex: 1c7c7f44ec57caf6, endpoint: "https://10.0.0.1:2379"}
    leaders_seen:
      description: Distinct leader IDs (hex) reported by reachable members; more than one means a split view.
      type: list
      elements: str
    voting_members:
      description: Number of voting members (learners excluded).
      type: int
    learners:
      description: Number of learners.
      type: int
    quorum:
      description: Voting members needed for quorum (voters // 2 + 1).
      type: int
    healthy_voters:
      description: Voting members that are healthy.
      type: int
    has_quorum:
      description: healthy_voters >= quorum.
      type: bool
    healthy:
      description:
        - Every voting member healthy, exactly one leader agreed by every reachable member,
          no alarms, one cluster ID, and the member list could be read.
        - Learner problems (for example a learner not started yet) appear in problems but do
          not make the cluster unhealthy.
      type: bool
    versions:
      description: Distinct server versions reported, sorted.
      type: list
      elements: str
      sample: ["3.4.23", "3.5.1"]
    revision:
      description: Highest revision reported (0 if no member answered).
      type: int
    revision_spread:
      description: Highest minus lowest revision among reachable members.
      type: int
    alarms:
      description: Active alarms (member_id_hex, member, alarm such as NOSPACE or CORRUPT).
      type: list
      elements: dict
    cluster_version:
      description:
        - The cluster version (C(etcdcluster) of C(/version)), for example V(3.5.0); with O(details) only.
        - Empty when it could not be read, V(not_decided) right after bootstrap.
      type: str
      returned: when O(details=true)
    auth_enabled:
      description: Whether etcd authentication is on; null when it could not be told. With O(details) only.
      type: bool
      returned: when O(details=true)
    problems:
      description: Plain-English findings, empty when all is well.
      type: list
      elements: str
      sample: ["member m3 (https://10.0.0.3:2379) unreachable: context deadline exceeded (connect: connection refused)"]
wait:
  description: With O(wait_member) - how the wait went.
  returned: when O(wait_member) is set
  type: dict
  contains:
    done:
      description: Every check passed.
      type: bool
    seconds:
      description: Time waited.
      type: float
    longest_leaderless_seconds:
      description: Longest stretch in which no member knew a leader (about 0.3 s resolution).
      type: float
    failed:
      description: The checks still failing at the end (empty when done).
      type: list
      elements: str
waited_seconds:
  description: With O(wait_healthy) - seconds until every member was healthy.
  returned: when O(wait_healthy) is set
  type: float
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import (
    Etcdctl, client_argument_spec, collect, probe_auth, read_cluster_version, wait_healthy)
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_upgrade import wait_for_member


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(client_argument_spec(), fail_on_unhealthy=dict(type="bool", default=False),
                           details=dict(type="bool", default=False), wait_member=dict(type="str"),
                           wait_applied_index=dict(type="int", default=0), wait_version=dict(type="str", default=""),
                           wait_healthy=dict(type="bool", default=False), wait_timeout=dict(type="int", default=120)),
        required_together=[("cert", "key")],
        supports_check_mode=True,
    )
    p = module.params
    endpoints = [e.strip() for e in p["endpoints"] if e and e.strip()]
    if not endpoints:
        module.fail_json(msg="endpoints must list at least one client URL")
    # run_command would fail with a bare OSError text; say what is missing instead.
    if not os.access(p["etcdctl"], os.X_OK):
        module.fail_json(msg=f"etcdctl not found or not executable at {p['etcdctl']}")
    for name in ("cacert", "cert", "key"):
        if p[name] and not os.path.isfile(p[name]):
            module.fail_json(msg=f"{name} file not found: {p[name]}")

    # etcdctl refuses to run when a flag we pass is also in the environment.
    for name in Etcdctl.clashing_env(os.environ):
        del os.environ[name]
    ctl = Etcdctl(
        run=module.run_command,
        etcdctl=p["etcdctl"],
        cacert=p["cacert"],
        cert=p["cert"],
        key=p["key"],
        dial_timeout=p["dial_timeout"],
        command_timeout=p["command_timeout"],
    )
    wait = None
    if p["wait_member"]:
        wait = wait_for_member(ctl, endpoints, p["wait_member"], p["wait_applied_index"], p["wait_version"],
                               p["wait_timeout"])
        status = wait.pop("status") or collect(ctl, endpoints).to_dict()
        if not wait["done"]:
            module.fail_json(msg="%s did not pass its checks within %d s: %s" % (
                p["wait_member"], p["wait_timeout"], "; ".join(wait["failed"])), status=status, wait=wait)
    elif p["wait_healthy"]:
        healthy, waited = wait_healthy(ctl, endpoints, p["wait_timeout"])
        status = healthy.to_dict()
        if not status["healthy"]:
            module.fail_json(msg="etcd cluster is not healthy after %d s: %s" % (
                p["wait_timeout"], "; ".join(status["problems"] or ["see status"])), status=status,
                waited_seconds=round(waited, 3))
        wait = {"waited_seconds": round(waited, 3)}
    else:
        status = collect(ctl, endpoints).to_dict()
    if p["details"]:
        leader = (status.get("leader") or {}).get("endpoint") or next(
            (m["endpoint"] for m in status["members"] if m["reachable"]), "")
        status["cluster_version"], version_error = (
            read_cluster_version(leader, p["cacert"], p["cert"], p["key"]) if leader else ("", "no member answered"))
        if version_error:
            module.warn("could not read the cluster version from %s: %s" % (leader, version_error))
        status["auth_enabled"], auth_error = probe_auth(ctl, endpoints, status["versions"])
        if auth_error:
            module.warn("could not tell whether authentication is on: %s" % auth_error)
    if p["fail_on_unhealthy"] and not status["healthy"]:
        module.fail_json(
            msg="etcd cluster is not healthy: " + "; ".join(status["problems"] or ["see status"]),
            changed=False,
            status=status,
        )
    extra = {"waited_seconds": wait["waited_seconds"]} if wait and "waited_seconds" in wait else (
        {"wait": wait} if wait else {})
    module.exit_json(changed=False, status=status, **extra)


if __name__ == "__main__":
    main()
