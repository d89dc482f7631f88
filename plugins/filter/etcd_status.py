# -*- coding: utf-8 -*-
"""Filter ``etcd_status_table``: render the etcd_status module's ``status`` dict
as a fixed-width table (NAME, ENDPOINT, ID, VERSION, LEADER, LEARNER, HEALTHY,
REVISION, RAFT TERM, DB SIZE) plus leader / quorum / health / problems lines.

    - ansible.builtin.debug:
        msg: "{{ etcd.status | controlplane.etcd.etcd_status_table }}"

The table itself lives in the status layer (module_utils/etcd_status.py).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import format_table


def etcd_status_table(status: Mapping[str, Any]) -> str:
    return format_table(status)


class FilterModule:
    """etcd status filters."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"etcd_status_table": etcd_status_table}
