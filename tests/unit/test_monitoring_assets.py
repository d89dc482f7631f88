"""The etcd alert rules, their promtool tests and the Grafana dashboard stay consistent.

promtool itself proves the rules behave (tests/prometheus/etcd-alerts.test.yml); these checks
catch what promtool lets through: a rule without a runbook, a severity with no test that
makes it fire, a quiet case for a misspelt alert name, a dashboard panel on a metric nobody
exports.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "roles" / "etcd_prometheus" / "files"
RULES = FILES / "etcd-alerts.yml"
DASHBOARD = FILES / "etcd-dashboard.json"
RULE_TESTS = REPO / "tests" / "prometheus" / "etcd-alerts.test.yml"
PROMTOOL = REPO / ".cache" / "tools" / "bin" / "promtool"

SEVERITIES = {"warning", "critical"}

# Dashboard metrics that no alert uses: exported by etcd itself or by the backup and
# certificate textfiles on each member.
DASHBOARD_ONLY_METRICS = {
    "up",
    "etcd_network_peer_round_trip_time_seconds_bucket",
    "etcd_backup_last_success_timestamp_seconds",
    "etcd_backup_interval_seconds",
    "etcd_backup_last_run_success",
    "etcd_backup_failures_total",
    "etcd_backup_last_size_bytes",
    "etcd_backup_last_duration_seconds",
    "etcd_backup_last_revision",
    "etcd_backup_upload_last_success_timestamp_seconds",
    "etcd_tls_certificate_expiry_timestamp_seconds",
    "etcd_restore_drill_rto_seconds",
    "etcd_restore_drill_rpo_seconds",
}

# Alert-only metrics the dashboard need not plot: bookkeeping of the backup job that only
# tells whether the backup alerts can judge a cluster at all (EtcdBackupStale's age guard,
# EtcdBackupMetricsMissing), not a signal worth a panel.
ALERT_ONLY_METRICS = {
    "etcd_backup_first_run_timestamp_seconds",
    "etcd_backup_last_run_timestamp_seconds",
    # A threshold, not a signal: the drill row shows the last success it is compared with.
    "etcd_restore_drill_max_age_seconds",
}

# Words that look like metric names in PromQL but are not.
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "atan2", "inf", "nan",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (a plain scan, enough for these files)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges and subqueries
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$:])([A-Za-z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if not call and word not in _PROMQL_WORDS:
            names.add(word)
    return names


@pytest.fixture(scope="module")
def rules():
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def rule_tests():
    return yaml.safe_load(RULE_TESTS.read_text())


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD.read_text())


def _targets(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def _alert_cases(rule_tests):
    for group in rule_tests["tests"]:
        for case in group.get("alert_rule_test", []):
            yield group.get("name", "?"), case


def test_metric_name_scan():
    expr = (
        'time() - max by (etcd_cluster) (etcd_backup_last_success_timestamp_seconds{job="x"}) '
        '> 2 * max by (etcd_cluster) (etcd_backup_interval_seconds) '
        'or sum without (instance) (up{job=~".*etcd.*"} == bool 1) '
        'and on (instance) rate(etcd_server_proposals_failed_total[$__rate_interval]) > 1e3'
    )
    assert metric_names(expr) == {
        "etcd_backup_last_success_timestamp_seconds",
        "etcd_backup_interval_seconds",
        "up",
        "etcd_server_proposals_failed_total",
    }


def test_rule_file_parses(rules):
    doc = yaml.safe_load(RULES.read_text())
    assert "etcd" in [g["name"] for g in doc["groups"]]
    assert rules and all("alert" in r and r.get("expr") for r in rules)


def test_every_rule_is_labelled_and_annotated(rules):
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Etcd[A-Z][A-Za-z]+", name), name
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert str(annotations.get(key, "")).strip(), f"{name} has no {key}"
        assert "http" not in annotations["runbook"], f"{name}: runbook is a hint, not a link"


def test_alert_name_and_severity_pairs_are_unique(rules):
    pairs = [(r["alert"], r["labels"]["severity"]) for r in rules]
    assert len(pairs) == len(set(pairs))


def test_every_alert_and_severity_fires_in_a_test(rules, rule_tests):
    fired = {
        (case["alertname"], alert.get("exp_labels", {}).get("severity"))
        for _, case in _alert_cases(rule_tests)
        for alert in case.get("exp_alerts") or []
    }
    missing = {(r["alert"], r["labels"]["severity"]) for r in rules} - fired
    assert not missing, f"no promtool case fires {sorted(missing)}"


def test_every_alert_has_a_quiet_case(rules, rule_tests):
    quiet = {case["alertname"] for _, case in _alert_cases(rule_tests) if case.get("exp_alerts", None) == []}
    missing = {r["alert"] for r in rules} - quiet
    assert not missing, f"no promtool case with exp_alerts: [] for {sorted(missing)}"


def test_cluster_aggregations_drop_the_member_label(rules):
    # Every target carries etcd_cluster and member; "without (instance)" alone keeps one group
    # per member, so a per-cluster rule (quorum, leader changes) judges each member on its own.
    for rule in rules:
        for labels in re.findall(r"\bwithout\s*\(([^)]*)\)", rule["expr"]):
            dropped = {label.strip() for label in labels.split(",")}
            if "instance" in dropped:
                assert "member" in dropped, f"{rule['alert']}: without ({labels}) keeps member"


def test_rule_tests_name_only_real_alerts(rules, rule_tests):
    # promtool passes an exp_alerts: [] case for an alert that does not exist at all.
    known = {r["alert"] for r in rules}
    for group, case in _alert_cases(rule_tests):
        assert case["alertname"] in known, f"{group}: unknown alert {case['alertname']}"


def test_rule_tests_load_the_role_rule_file(rule_tests):
    paths = [(RULE_TESTS.parent / p).resolve() for p in rule_tests["rule_files"]]
    assert paths == [RULES.resolve()]


def test_dashboard_metrics_are_known(rules, dashboard):
    from_rules = {m for r in rules for m in metric_names(r["expr"]) if m.startswith("etcd_")}
    allowed = from_rules | DASHBOARD_ONLY_METRICS
    for panel, target in _targets(dashboard):
        unknown = metric_names(target["expr"]) - allowed
        assert not unknown, f"panel {panel['title']!r} uses {sorted(unknown)}"


def test_dashboard_shows_every_alerted_signal(rules, dashboard):
    shown = {m for _, target in _targets(dashboard) for m in metric_names(target["expr"])}
    alerted = {m for r in rules for m in metric_names(r["expr"])} - ALERT_ONLY_METRICS
    assert not alerted - shown, f"alerted but not on the dashboard: {sorted(alerted - shown)}"
    assert "etcd_network_peer_round_trip_time_seconds_bucket" in shown


def test_dashboard_panel_ids_and_layout(dashboard):
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_dashboard_uses_the_datasource_variable(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    for panel, target in _targets(dashboard):
        assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def _promtool(*args, cwd=REPO):
    return subprocess.run([str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


needs_promtool = pytest.mark.skipif(
    not PROMTOOL.is_file(), reason=f"promtool not installed at {PROMTOOL.relative_to(REPO)}"
)


@needs_promtool
def test_promtool_checks_and_tests_the_rules():
    check = _promtool("check", "rules", str(RULES.relative_to(REPO)))
    assert check.returncode == 0, check.stdout + check.stderr
    run = _promtool("test", "rules", str(RULE_TESTS.relative_to(REPO)))
    assert run.returncode == 0, run.stdout + run.stderr


@needs_promtool
def test_promtool_parses_the_dashboard_queries(dashboard, tmp_path):
    # Grafana's variables replaced by values Prometheus accepts, each query as a recording rule.
    records = []
    for panel, target in _targets(dashboard):
        expr = target["expr"].replace("$__rate_interval", "1m").replace("$cluster", ".*")
        records.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    check = _promtool("check", "rules", str(rule_file))
    assert check.returncode == 0, check.stdout + check.stderr
