"""playbooks/health.yml on the live cluster: one table, JSON for machines, a verdict.

Runs after the backup tests, so the members' backup job and the monitoring host's
scheduled drill have state to report.
"""
from __future__ import annotations

import json

import harness
from conftest import MEMBERS

ALL = {name: {} for name in MEMBERS}


def health(tmp_path, *extra: str):
    report = tmp_path / "health.json"
    run = harness.run_site(tmp_path, ALL, "-e", "etcd_health_report_file=%s" % report, *extra,
                           playbook="health", drill_hosts=["mon"])
    return run, (json.loads(report.read_text()) if report.exists() else None)


def test_a_healthy_cluster_reports_every_member_backup_and_drill_and_exits_zero(tmp_path):
    before = harness.snapshot()
    run, report = health(tmp_path)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert "etcd cluster health: OK" in run.stdout and "nothing needs attention" in run.stdout
    assert report["ok"] and report["attention"] == []
    members = {m["name"]: m for m in report["members"]}
    assert sorted(members) == sorted(MEMBERS) and sum(m["is_leader"] for m in members.values()) == 1
    for m in members.values():
        assert m["healthy"] and m["took_ms"] is not None and m["applied_lag"] is not None
        assert m["db_size"] > 0 and 0 <= m["quota_ratio"] < 0.8
        # The CA (10 years) and the leaf certificates (a year) as each member holds them.
        assert sorted(m["cert_expiry"]) == ["admin", "ca", "peer", "server"]
        assert all(c["days_left"] > 300 for c in m["cert_expiry"].values())
    assert report["backup"]["age_seconds"] is not None and report["backup"]["age_seconds"] < 7200
    assert report["drill"]["mon"]["last_success"] is not None and report["drill"]["mon"]["last_ok"]
    # Read-only.
    assert harness.snapshot() == before


def test_what_needs_attention_is_named_and_the_run_fails(tmp_path):
    before = harness.snapshot()
    run, report = health(tmp_path, "-e", "etcd_health_backup_age_seconds=1", "-e", "etcd_health_cert_days=4000")
    assert run.returncode != 0
    assert not report["ok"]
    text = "\n".join(report["attention"])
    assert "backup" in text
    # Each member's CA expires within 4000 days: every member is named.
    assert all(name in text for name in MEMBERS), text
    assert "Needs attention" in run.stdout and "NEEDS ATTENTION" in run.stdout
    assert harness.snapshot() == before
