# -*- coding: utf-8 -*-
"""Filter ``etcd_health_report``: one health report from what the health playbook gathered.

    status | etcd_health_report(members, drills, limits[, now])
        -> {ok, attention, generated, cluster, members, backup, drill, table}

    status   the etcd_status module's ``status`` dict (None when no member answered)
    members  {etcd member name: {host, certs: [{name, path, not_after, error}], backup: state.json or None}}
    drills   {drill host: {state: state.json or None, report: last-report.json or None}}
    limits   {db_quota_ratio, applied_lag, cert_days, backup_age_seconds, drill_age_seconds,
              health_took_ms, db_quota_bytes, remote_expected}; missing keys take the defaults
    now      epoch seconds; the controller's clock when left out

    x509_certificate_info loop result | etcd_health_cert_row(pki_dir)
        -> {name, path, not_after, error}: one entry of a member's ``certs``

The rules live in module_utils/etcd_health.py.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Mapping, Optional

from ansible.errors import AnsibleFilterError
from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_health


def etcd_health_report(status: Optional[Mapping[str, Any]], members: Optional[Mapping[str, Any]] = None,
                       drills: Optional[Mapping[str, Any]] = None, limits: Optional[Mapping[str, Any]] = None,
                       now: Optional[float] = None) -> Dict[str, Any]:
    for what, value in (("status", status), ("members", members), ("drills", drills), ("limits", limits)):
        if value and not isinstance(value, Mapping):  # None or "" (an unset variable) means none
            raise AnsibleFilterError("etcd_health_report: %s must be a dict, got %s" % (what, type(value).__name__))
    return etcd_health.health_report(status, members or {}, drills or {}, limits or {},
                                     time.time() if now is None else float(now))


def etcd_health_cert_row(result: Mapping[str, Any], pki_dir: str) -> Dict[str, Any]:
    if not isinstance(result, Mapping):
        raise AnsibleFilterError("etcd_health_cert_row expects one x509_certificate_info loop result")
    return etcd_health.cert_row(result, str(pki_dir))


class FilterModule:
    """etcd health filters."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"etcd_health_report": etcd_health_report, "etcd_health_cert_row": etcd_health_cert_row}
