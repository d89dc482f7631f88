# -*- coding: utf-8 -*-
"""Filters for joining, replacing and removing members (rules in module_utils/etcd_membership.py).

    status | etcd_joiners(members, peer_port)                        inventory hosts not in the cluster
    status | etcd_membership_problems(members, peer_port, remove)    what stops a run
    status | etcd_join_cluster(name, peer_url)                       a joiner's initial-cluster
    status | etcd_removal_problems(name)                             why removing it now is unsafe
    status | etcd_removal_plan_problems(names, members, peer_port)   the same for several, in order
    status | etcd_join_state(member, peer_port)                      '', join, promote, foreign or lost
    status | etcd_member_find(name)                                  that member's status row
    member | etcd_peer_url(peer_port)                                its advertised peer URL
    value | etcd_names                                               a list from a list or "a,b"
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_membership as m


def etcd_join_cluster(status: Mapping[str, Any], name: str, url: str) -> str:
    try:
        return m.join_cluster(status, name, url)
    except ValueError as e:
        raise AnsibleFilterError(str(e))


def etcd_member_find(status: Mapping[str, Any], wanted: str) -> Dict[str, Any]:
    return dict(m.find(status, wanted) or {})


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"etcd_joiners": m.joiners, "etcd_membership_problems": m.membership_problems,
                "etcd_join_cluster": etcd_join_cluster, "etcd_removal_problems": m.removal_problems,
                "etcd_member_find": etcd_member_find, "etcd_peer_url": m.peer_url,
                "etcd_removal_plan_problems": m.removal_plan_problems, "etcd_join_state": m.join_state,
                "etcd_names": m.names}
