# -*- coding: utf-8 -*-
"""Filters for playbooks/maintenance.yml (rules in module_utils/etcd_maintenance.py).

    status | etcd_maintenance_blockers(mode)            what stops the run
    status | etcd_defrag_plan(mode, min_free_bytes, only) order, skipped members, problems
    status | etcd_defrag_heir(leaving, done)            hex ID to hand leadership to
    plan | etcd_defrag_plan_lines(mode, revision)       the plan as printed
    rows | etcd_defrag_report_lines                     before/after/seconds per member
    metrics_text | etcd_compactions_done                 compactions a member has finished
"""
from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_maintenance as m


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"etcd_maintenance_blockers": m.blockers, "etcd_maintenance_other_alarms": m.other_alarms,
                "etcd_defrag_plan": m.defrag_plan, "etcd_defrag_heir": m.heir,
                "etcd_defrag_plan_lines": m.plan_lines, "etcd_defrag_report_lines": m.report_lines,
                "etcd_compactions_done": m.compactions_done}
