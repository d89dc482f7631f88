"""Prometheus on the monitoring host: real scrapes over mTLS, real rules, a real outage."""
from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

import yaml

import harness
from conftest import MEMBERS

MONITOR = "172.31.241.20"
RULES = Path(harness.PROJECT) / "roles" / "etcd_prometheus" / "files" / "etcd-alerts.yml"


def api(path: str, **params: str) -> dict:
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    out = harness.ssh(MONITOR, f"curl -sS -m 10 'http://127.0.0.1:9090/api/v1/{path}{query}'").stdout
    doc = json.loads(out)
    assert doc["status"] == "success", doc
    return doc["data"]


def query(expr: str) -> list:
    return api("query", query=expr)["result"]


def eventually(check, timeout: float = 90, step: float = 3):
    deadline = time.time() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, json.JSONDecodeError, KeyError):
            if time.time() > deadline:
                raise
        if time.time() > deadline:
            return check()
        time.sleep(step)


def test_prometheus_listens_on_loopback_only():
    listening = harness.ssh(MONITOR, "ss -Htln").stdout
    assert "127.0.0.1:9090" in listening and "*:9090" not in listening and "0.0.0.0:9090" not in listening


def test_every_member_is_scraped_over_mtls():
    def all_up():
        targets = api("targets")["activeTargets"]
        up = {(t["labels"]["job"], t["labels"]["member"]) for t in targets
              if t["health"] == "up" and t["labels"]["job"] in ("etcd", "node")}
        return up == {(job, m) for job in ("etcd", "node") for m in MEMBERS} and targets
    targets = eventually(all_up)
    assert targets, api("targets")
    assert all(t["scrapeUrl"].startswith("https://") for t in targets)
    ups = query('up{job=~"etcd|node"}')
    assert len(ups) == 6 and all(r["value"][1] == "1" for r in ups)


def test_every_member_has_a_leader_through_the_query_api():
    result = eventually(lambda: len(query("etcd_server_has_leader == 1")) == 3 and query("etcd_server_has_leader"))
    assert sorted(r["metric"]["member"] for r in result) == sorted(MEMBERS)
    assert all(r["value"][1] == "1" for r in result)


def test_backup_and_certificate_metrics_arrive_through_node_exporter():
    intervals = eventually(lambda: query("etcd_backup_interval_seconds"))
    assert len(intervals) == 3 and {r["value"][1] for r in intervals} == {"3600"}
    expiry = query('etcd_tls_certificate_expiry_timestamp_seconds{cert="server"} - time()')
    assert len(expiry) == 3 and all(float(r["value"][1]) > 300 * 86400 for r in expiry)


def test_all_alert_rules_are_loaded():
    wanted = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    loaded = {r["name"] for g in api("rules")["groups"] for r in g["rules"]}
    assert wanted and wanted <= loaded
    assert all(r["health"] == "ok" for g in api("rules")["groups"] for r in g["rules"])


def test_stopping_a_member_raises_members_down():
    leader = harness.leader_name()
    victim = next(m for m in sorted(MEMBERS) if m != leader)
    harness.ssh(victim, "sudo systemctl stop etcd")
    try:
        def members_down():
            return [a for a in api("alerts")["alerts"]
                    if a["labels"]["alertname"] == "EtcdMembersDown" and a["state"] in ("pending", "firing")]
        alerts = eventually(members_down, timeout=120)
        assert alerts, api("alerts")
        assert any(a["labels"].get("member") == victim for a in alerts)
    finally:
        harness.ssh(victim, "sudo systemctl start etcd")
    assert eventually(lambda: harness.cluster_healthy("m1"), timeout=60)
