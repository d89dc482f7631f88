"""The health report (module_utils/etcd_health.py) and its filter etcd_health_report."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.controlplane.etcd.plugins.filter import etcd_health as health_filter
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_health import (
    go_duration_ms,
    health_report,
    human_age,
    parse_not_after,
)
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import (
    ClusterStatus,
    Etcdctl,
    MemberStatus,
    collect,
)

NOW = 1796305445.0  # 2026-12-03T13:44:05Z
DAY = 86400.0
GIB = 1024 ** 3
NAMES = ("m1", "m2", "m3")
IDS = {"m1": "1c7c7f44ec57caf6", "m2": "8e9e05c52164694d", "m3": "91bc3c398fb3c146"}
FIXTURES = Path(__file__).parent / "fixtures" / "etcd_status"


# --------------------------------------------------------------------------
# A healthy cluster, built from the status layer's own dataclasses so the keys are real
# --------------------------------------------------------------------------

def _member(name: str, n: int, leader: bool) -> MemberStatus:
    ep = "https://10.0.0.%d:2379" % n
    return MemberStatus(
        name=name, id_hex=IDS[name], peer_urls=["https://10.0.0.%d:2380" % n], client_urls=[ep],
        is_learner=False, started=True, endpoint=ep, reachable=True, version="3.5.30",
        db_size=200 * 1024 ** 2, db_size_in_use=150 * 1024 ** 2, revision=5000, raft_term=4,
        raft_index=10000, raft_applied_index=10000 - n, leader_id_hex=IDS["m1"], is_leader=leader,
        healthy=True, health_took="%d.%03dms" % (4 + n, 321),
    )


def healthy_status() -> Dict[str, Any]:
    members = [_member(name, i + 1, name == "m1") for i, name in enumerate(NAMES)]
    return ClusterStatus(
        cluster_id="cdf818194e3a8c32", members=members,
        leader={"name": "m1", "id_hex": IDS["m1"], "endpoint": members[0].endpoint}, leaders_seen=[IDS["m1"]],
        voting_members=3, learners=0, quorum=2, healthy_voters=3, has_quorum=True, healthy=True,
        versions=["3.5.30"], revision=5000, revision_spread=0, alarms=[], problems=[],
    ).to_dict()


def _cert(name: str, days: float) -> Dict[str, Any]:
    import datetime as dt
    when = dt.datetime.fromtimestamp(NOW + days * DAY, dt.timezone.utc)
    return {"name": name, "path": "/etc/etcd/pki/%s.crt" % name, "not_after": when.strftime("%Y%m%d%H%M%SZ"),
            "error": ""}


def _backup(last: float, upload: float = 0.0) -> Dict[str, Any]:
    return {"last_success_timestamp": last, "last_run_success": 1, "last_run_timestamp": NOW - 600,
            "upload_last_success_timestamp": upload,
            "failures": {"status": 0, "snapshot": 0, "verify": 0, "retention": 0, "upload": 0, "state": 0}}


def healthy_members() -> Dict[str, Dict[str, Any]]:
    # Only the leader (m1) snapshots; the followers' jobs skip and keep last_success at 0.
    return {name: {"host": "etcd-%d" % (i + 1),
                   "certs": [_cert("server", 300), _cert("peer", 300 + i)],
                   "backup": _backup(NOW - 1800 if name == "m1" else 0.0)}
            for i, name in enumerate(NAMES)}


def healthy_drills() -> Dict[str, Dict[str, Any]]:
    return {"drill-1": {
        "state": {"failures": 2, "last_success": NOW - DAY, "last_rto": 14.2, "last_rpo": 2400.0},
        "report": {"ok": True, "problems": [], "finished": "2026-12-02T13:44:05Z",
                   "snapshot": "etcd-prod-20261202T130000Z-r4900.db"},
    }}


def report(status: Any = "healthy", members: Any = "healthy", drills: Any = "healthy",
           limits: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    return health_report(healthy_status() if status == "healthy" else status,
                         healthy_members() if members == "healthy" else members,
                         healthy_drills() if drills == "healthy" else drills, limits or {}, NOW)


def table_rows(table: str) -> List[str]:
    """The member rows: the lines between the column header and the next blank line."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("MEMBER"))
    rows = []
    for line in lines[start + 1:]:
        if not line:
            break
        rows.append(line)
    return rows


# --------------------------------------------------------------------------
# Healthy
# --------------------------------------------------------------------------

def test_healthy_cluster_is_ok():
    r = report()
    assert r["ok"] is True and r["attention"] == []
    assert json.loads(json.dumps(r)) == r  # goes through Ansible's JSON as is
    assert r["generated"] == "2026-12-03T13:44:05Z"
    assert r["cluster"] == {"healthy": True, "has_quorum": True, "leader": "m1", "versions": ["3.5.30"],
                            "revision": 5000, "revision_spread": 0, "alarms": []}
    lines = r["table"].splitlines()
    assert lines[0] == "etcd cluster health: OK" and lines[-1] == "nothing needs attention"
    rows = table_rows(r["table"])
    assert [row.split()[0] for row in rows] == ["m1", "m2", "m3"]
    assert rows[0].split()[:4] == ["m1", "healthy", "5.3", "ms"]
    assert "200.0 MiB / 2.0 GiB (10%)" in rows[0] and rows[0].endswith("300 d")


def test_member_rows():
    rows = {m["name"]: m for m in report()["members"]}
    m1, m3 = rows["m1"], rows["m3"]
    assert (m1["host"], m1["is_leader"], m1["took_ms"], m1["db_size_quota"]) == ("etcd-1", True, 5.321, 2 * GIB)
    # lag: the leader's raft_index (10000) minus this member's applied index
    assert (m1["applied_lag"], m3["applied_lag"]) == (1, 3)
    assert m1["quota_ratio"] == round(200 / 2048, 4)
    assert m3["cert_expiry"]["peer"] == {"path": "/etc/etcd/pki/peer.crt", "not_after": "2027-10-01T13:44:05Z",
                                         "days_left": 302.0, "error": ""}
    assert set(m1) >= {"name", "host", "healthy", "reachable", "is_leader", "is_learner", "took_ms", "version",
                       "db_size", "db_size_in_use", "db_size_quota", "quota_ratio", "applied_lag", "cert_expiry",
                       "errors"}


def test_backup_and_drill_figures():
    r = report(members={n: dict(m, backup=_backup(NOW - 1800, NOW - 1700)) for n, m in healthy_members().items()})
    assert r["backup"] == {"last_success": "2026-12-03T13:14:05Z", "age_seconds": 1800.0,
                           "last_upload": "2026-12-03T13:15:45Z", "upload_age_seconds": 1700.0}
    assert r["drill"]["drill-1"] == {"last_success": "2026-12-02T13:44:05Z", "age_seconds": DAY, "last_ok": True,
                                     "failures": 2, "rto_seconds": 14.2, "rpo_seconds": 2400.0,
                                     "last_finished": "2026-12-02T13:44:05Z"}
    assert "last backup:        30 min ago (2026-12-03T13:14:05Z)" in r["table"]
    assert "last off-host copy: 28 min ago" in r["table"]
    assert "drill drill-1: last success 1.0 d ago, last run ok, failures 2, RTO 14.2 s, RPO 40 min" in r["table"]


# --------------------------------------------------------------------------
# Each kind of attention: exactly its own item, naming who
# --------------------------------------------------------------------------

def _set_member(name: str, **values: Any) -> Callable[[Dict[str, Any]], None]:
    def change(c: Dict[str, Any]) -> None:
        next(m for m in c["status"]["members"] if m["name"] == name).update(values)
    return change


def _unhealthy_m3(c: Dict[str, Any]) -> None:
    _set_member("m3", healthy=False, reachable=False, errors=["connection refused"])(c)
    c["status"].update(healthy=False, healthy_voters=2, problems=[
        "member m3 (https://10.0.0.3:2379) unreachable: context deadline exceeded (connection refused)"])


def _alarm(form: str) -> Callable[[Dict[str, Any]], None]:
    def change(c: Dict[str, Any]) -> None:
        # etcd_status writes {member_id_hex, member, alarm} and words it as a problem as well.
        alarm = ({"member_id_hex": IDS["m2"], "member": "m2", "alarm": "NOSPACE"} if form == "status"
                 else {"member_id": IDS["m2"], "alarm": "NOSPACE"})
        c["status"].update(healthy=False, alarms=[alarm], problems=["alarm NOSPACE raised by member m2"])
    return change


def _set_cert(name: str, cert: Dict[str, Any]) -> Callable[[Dict[str, Any]], None]:
    def change(c: Dict[str, Any]) -> None:
        c["members"][name]["certs"][0] = cert
    return change


def _set_backup(name: str, **values: Any) -> Callable[[Dict[str, Any]], None]:
    def change(c: Dict[str, Any]) -> None:
        c["members"][name]["backup"].update(values)
    return change


def _no_backup(c: Dict[str, Any]) -> None:
    for m in c["members"].values():
        m["backup"]["last_success_timestamp"] = 0.0


def _drill(state: Optional[Dict[str, Any]] = None, report_: Optional[Dict[str, Any]] = None,
           never: bool = False) -> Callable[[Dict[str, Any]], None]:
    def change(c: Dict[str, Any]) -> None:
        d = c["drills"]["drill-1"]
        if never:
            d.update(state=None, report=None)
        if state:
            d["state"].update(state)
        if report_:
            d["report"].update(report_)
    return change


def _limit(**values: Any) -> Callable[[Dict[str, Any]], None]:
    def change(c: Dict[str, Any]) -> None:
        c["limits"].update(values)
    return change


ATTENTION_CASES = [
    ("status problem kept as worded", _unhealthy_m3,
     ["member m3 (https://10.0.0.3:2379) unreachable: context deadline exceeded (connection refused)"]),
    ("alarm from etcd_status", _alarm("status"),
     ["m2 (etcd-2): alarm NOSPACE is raised:", "playbooks/maintenance.yml -e etcd_maintenance_mode=nospace"]),
    ("alarm by member id", _alarm("id"), ["m2 (etcd-2): alarm NOSPACE is raised:"]),
    ("db size over the default quota", _set_member("m2", db_size=int(1.8 * GIB), db_size_in_use=GIB),
     ["m2 (etcd-2): db size 1.8 GiB is 90% of the 2.0 GiB quota (limit 80%", "run playbooks/maintenance.yml"]),
    ("db size over a reported 3.6 quota", _set_member("m3", db_size_quota=240 * 1024 ** 2),
     ["m3 (etcd-3): db size 200.0 MiB is 83% of the 240.0 MiB quota"]),
    ("db in use near the quota", _set_member("m3", db_size=int(1.9 * GIB), db_size_in_use=int(1.8 * GIB)),
     ["m3 (etcd-3): db size", "raise etcd_quota_backend_bytes"]),
    ("applied lag", _set_member("m3", raft_applied_index=4000),
     ["m3 (etcd-3): applied index is 6000 entries behind the leader's raft index (limit 1000)", "on etcd-3"]),
    ("slow health check", _set_member("m2", health_took="1.5s"),
     ["m2 (etcd-2): endpoint health took 1.50 s (limit 1000 ms)", "journalctl -u etcd on etcd-2"]),
    ("certificate expiring", _set_cert("m1", _cert("server", 12)),
     ["m1 (etcd-1): certificate server (/etc/etcd/pki/server.crt) expires in 12.0 days", "limit 30 days",
      "run playbooks/site.yml (renews certificates inside etcd_pki_renew_days)"]),
    ("certificate expired", _set_cert("m1", _cert("server", -2)),
     ["m1 (etcd-1): certificate server (/etc/etcd/pki/server.crt) expired on 2026-12-01T13:44:05Z",
      "run playbooks/site.yml"]),
    ("certificate unreadable", _set_cert("m2", {"name": "server", "path": "/etc/etcd/pki/server.crt",
                                                "not_after": None, "error": "Permission denied"}),
     ["m2 (etcd-2): certificate server (/etc/etcd/pki/server.crt) could not be read: Permission denied",
      "run playbooks/site.yml"]),
    ("certificate without a date", _set_cert("m3", {"name": "server", "path": "/p.crt", "not_after": None}),
     ["m3 (etcd-3): certificate server (/p.crt) could not be read: no expiry date"]),
    ("backup never", _no_backup,
     ["backup: no member has taken a verified snapshot", "etcd-backup.timer", "journalctl -u etcd-backup",
      "playbooks/backup.yml"]),
    ("backup stale", _set_backup("m1", last_success_timestamp=NOW - 3 * 3600),
     ["backup: the newest verified snapshot is 3.0 h old (2026-12-03T10:44:05Z; limit 2.0 h)",
      "playbooks/backup.yml"]),
    ("backup newest on another member still counts", _set_backup("m2", last_success_timestamp=NOW - 60,
                                                                  last_run_success=0,
                                                                  failures={"upload": 3, "verify": 0}),
     ["m2 (etcd-2): backup: the last backup run (2026-12-03T13:34:05Z) failed; failures so far: upload 3:",
      "journalctl -u etcd-backup on etcd-2"]),
    ("drill never succeeded", _drill(never=True),
     ["drill host drill-1: no restore drill has succeeded: run playbooks/restore-drill.yml"]),
    ("drill stale", _drill(state={"last_success": NOW - 8 * DAY}),
     ["drill host drill-1: the last successful restore drill was 8.0 d ago", "limit 7.0 d",
      "playbooks/restore-drill.yml"]),
    ("drill failed", _drill(report_={"ok": False, "problems": ["m1: revision is 5, the snapshot's is 6", "other"]}),
     ["drill host drill-1: the last restore drill (2026-12-02T13:44:05Z, snapshot "
      "etcd-prod-20261202T130000Z-r4900.db) failed: m1: revision is 5, the snapshot's is 6",
      "playbooks/restore-drill.yml"]),
    ("remote expected, never used", _limit(remote_expected=True),
     ["backup: no snapshot has reached the off-host remote (remote_expected)"]),
]


@pytest.mark.parametrize("change, expected", [(c, e) for _, c, e in ATTENTION_CASES],
                         ids=[i for i, _, _ in ATTENTION_CASES])
def test_each_kind_raises_exactly_its_own_item(change, expected):
    case = {"status": healthy_status(), "members": healthy_members(), "drills": healthy_drills(), "limits": {}}
    change(case)
    r = health_report(case["status"], case["members"], case["drills"], case["limits"], NOW)
    assert not r["ok"]
    assert len(r["attention"]) == 1, r["attention"]
    item = r["attention"][0]
    assert "\n" not in item
    for text in expected:
        assert text in item
    lines = r["table"].splitlines()
    assert lines[0] == "etcd cluster health: NEEDS ATTENTION (1)"
    assert lines[-2:] == ["attention:", "  - " + item]


def test_alarm_replaces_only_its_own_problem_line():
    r = report(status=dict(healthy_status(), healthy=False,
                           alarms=[{"member_id_hex": IDS["m1"], "member": "m1", "alarm": "CORRUPT"}],
                           problems=["alarm CORRUPT raised by member m1", "no member reports a leader"]))
    assert r["attention"][0] == "no member reports a leader"
    assert r["attention"][1].startswith("m1 (etcd-1): alarm CORRUPT is raised: compare etcdctl endpoint hashkv")
    assert r["cluster"]["alarms"] == [{"member": "m1", "member_id_hex": IDS["m1"], "alarm": "CORRUPT"}]
    assert "alarms:             CORRUPT on m1" in r["table"]


def test_table_marks_problems_in_cells():
    status = healthy_status()
    status["members"][2].update(reachable=False, healthy=False, health_took="")
    members = healthy_members()
    members["m2"]["certs"][1] = _cert("peer", -1)
    rows = table_rows(report(status=status, members=members)["table"])
    assert rows[1].endswith("EXPIRED")
    assert rows[2].split() == ["m3", "UNREACHABLE", "-", "-", "3.5.30", "-", "-", "-", "300", "d"]


# --------------------------------------------------------------------------
# Missing inputs
# --------------------------------------------------------------------------

def test_no_status_at_all():
    r = report(status=None)
    assert not r["ok"]
    assert r["attention"][0].startswith("cluster: no etcd member answered (no status): check that etcd runs")
    # the certificates and backups gathered from the hosts are still reported
    assert len(r["attention"]) == 1
    assert [(m["name"], m["host"], m["reachable"], m["applied_lag"]) for m in r["members"]] == [
        ("m1", "etcd-1", False, None), ("m2", "etcd-2", False, None), ("m3", "etcd-3", False, None)]
    assert r["cluster"] == {"healthy": False, "has_quorum": False, "leader": None, "versions": [],
                            "revision": None, "revision_spread": None, "alarms": []}
    assert [row.split()[1] for row in table_rows(r["table"])] == ["UNREACHABLE"] * 3


def test_nothing_gathered_at_all():
    r = health_report(None, {}, {}, {}, NOW)
    assert not r["ok"] and r["members"] == []
    assert [a.split(":")[0] for a in r["attention"]] == ["cluster", "backup"]
    assert "MEMBER  HEALTH" in r["table"] and table_rows(r["table"]) == []


def test_no_drill_hosts_is_not_flagged():
    r = report(drills={})
    assert r["ok"] and r["drill"] == {}
    assert "restore drills:     no drill hosts" in r["table"]


def test_remote_never_used_is_not_flagged():
    r = report()
    assert r["ok"]
    assert (r["backup"]["last_upload"], r["backup"]["upload_age_seconds"]) == (None, None)
    assert "last off-host copy: -" in r["table"]


def test_stale_remote_flagged_only_when_expected():
    members = healthy_members()
    members["m1"]["backup"]["upload_last_success_timestamp"] = NOW - 5 * 3600
    assert report(members=members)["ok"]
    items = report(members=members, limits={"remote_expected": True})["attention"]
    assert items == ["backup: the newest off-host copy is 5.0 h old (2026-12-03T08:44:05Z; limit 2.0 h): "
                     "check journalctl -u etcd-backup (upload stage); run playbooks/backup.yml"]


def test_limits_default_when_missing_or_none():
    r = report(limits={"health_took_ms": 5, "cert_days": None})
    assert r["limits"]["cert_days"] == 30 and r["limits"]["applied_lag"] == 1000
    assert isinstance(r["limits"]["applied_lag"], int) and r["limits"]["health_took_ms"] == 5
    assert [a.split(":")[0] for a in r["attention"]] == ["m1 (etcd-1)", "m2 (etcd-2)", "m3 (etcd-3)"]
    assert report(limits={"db_quota_bytes": 220 * 1024 ** 2})["attention"][0].startswith(
        "m1 (etcd-1): db size 200.0 MiB is 91% of the 220.0 MiB quota")


def test_drill_report_without_state_still_proves_a_success():
    r = report(drills={"drill-1": {"state": None, "report": dict(healthy_drills()["drill-1"]["report"],
                                                                  finished="2026-12-02T13:44:05.123456Z")}})
    assert r["ok"] and r["drill"]["drill-1"]["age_seconds"] == pytest.approx(DAY - 0.123456)


def test_member_listed_by_hosts_but_not_by_etcd():
    members = healthy_members()
    members["m4"] = {"host": "etcd-4", "certs": [_cert("server", 5)], "backup": None}
    r = report(members=members)
    assert r["members"][-1]["name"] == "m4" and not r["members"][-1]["reachable"]
    assert r["attention"] == [a for a in r["attention"] if a.startswith("m4 (etcd-4): certificate server")]


# --------------------------------------------------------------------------
# Real etcdctl captures through etcd_status
# --------------------------------------------------------------------------

def _capture_status(version: str, scenario: str) -> Dict[str, Any]:
    doc = json.loads((FIXTURES / version / ("%s.json" % scenario)).read_text())

    def run(argv: Sequence[str], environ_update: Any = None, **_: Any):
        cmd = [a for a in argv[1:] if not a.startswith("-") and a != "json"]
        eps = next(a.split("=", 1)[1].split(",") for a in argv if a.startswith("--endpoints="))
        for rec in doc["commands"]:
            if "--hex" not in rec["argv"] and "--cluster" not in rec["argv"] \
                    and rec["command"] == cmd and rec["endpoints"] == eps:
                return rec["rc"], rec["stdout"], rec["stderr"]
        raise LookupError("no capture for %s %s" % (cmd, eps))

    return collect(Etcdctl(run=run), doc["seed_endpoints"]).to_dict()


def _capture_members(status: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {m["name"]: {"host": m["name"], "certs": [_cert("server", 300)],
                        "backup": _backup(NOW - 600 if m["is_leader"] else 0.0)} for m in status["members"]}


@pytest.mark.parametrize("version", ["3.4.23", "3.5.1", "3.5.30"])
def test_real_healthy_capture(version):
    status = _capture_status(version, "healthy")
    r = health_report(status, _capture_members(status), {}, {}, NOW)
    assert r["ok"], r["attention"]
    assert len(table_rows(r["table"])) == 3
    assert all(0 < m["took_ms"] < 50 for m in r["members"])


def test_real_nospace_capture():
    status = _capture_status("3.5.30", "alarm_nospace")
    members = _capture_members(status)
    r = health_report(status, members, {}, {}, NOW)
    assert r["attention"] == ["m1: alarm NOSPACE is raised: run playbooks/maintenance.yml -e "
                              "etcd_maintenance_mode=nospace (compact, defragment each member, disarm)"]
    # The capture ran with --quota-backend-bytes=8MiB, which 3.5 does not report: pass it as a limit.
    r = health_report(status, members, {}, {"db_quota_bytes": 8 * 1024 ** 2}, NOW)
    assert sorted(a.split(":")[0] for a in r["attention"][1:]) == ["m1", "m2", "m3", "m4"]


# --------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------

@pytest.mark.parametrize("text, ms", [
    ("12.345ms", 12.345), ("1.2s", 1200.0), ("850\u00b5s", 0.85), ("850\u03bcs", 0.85), ("850us", 0.85),
    ("100ns", 0.0001), ("1m2.5s", 62500.0), ("2h45m", 9900000.0), ("1h0m0.001s", 3600001.0), ("0s", 0.0),
    ("0", 0.0), (".5s", 500.0), ("-1.5s", -1500.0), ("4.609014ms", 4.609014),
    ("", None), (None, None), ("12", None), ("ms", None), ("1.2.3s", None), ("1d", None), ("1s junk", None),
])
def test_go_duration(text, ms):
    assert go_duration_ms(text) == ms


def test_not_after_formats():
    assert parse_not_after("20271203134500Z").isoformat() == "2027-12-03T13:45:00+00:00"
    assert parse_not_after("20271203134500+0100").timestamp() == parse_not_after("20271203124500Z").timestamp()
    assert parse_not_after("2027-12-03T13:45:00Z").isoformat() == "2027-12-03T13:45:00+00:00"
    assert parse_not_after(None) is None and parse_not_after("soon") is None


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (-5, "0 s"), (42, "42 s"), (42 * 60 + 30, "42 min"), (3.1 * 3600, "3.1 h"), (2 * DAY, "2.0 d"),
])
def test_human_age(seconds, text):
    assert human_age(seconds) == text


# --------------------------------------------------------------------------
# The filter
# --------------------------------------------------------------------------

def test_filter_is_registered_and_defaults_now(monkeypatch):
    f = health_filter.FilterModule().filters()["etcd_health_report"]
    assert f(healthy_status(), healthy_members(), healthy_drills(), {}, NOW) == report()
    monkeypatch.setattr(health_filter.time, "time", lambda: NOW + 3 * 3600)
    r = f(healthy_status(), healthy_members(), healthy_drills(), {})
    assert r["generated"] == "2026-12-03T16:44:05Z"
    assert r["attention"][0].startswith("backup: the newest verified snapshot is 3.5 h old")


@pytest.mark.parametrize("result, row", [
    ({"item": "server", "not_after": "20271203134500Z", "failed": False,
      "invocation": {"module_args": {"path": "/etc/etcd/pki/server.crt"}}},
     {"name": "server", "path": "/etc/etcd/pki/server.crt", "not_after": "20271203134500Z", "error": ""}),
    ({"item": "peer", "failed": True, "msg": "Error while reading certificate file from disk: [Errno 2] No such file"},
     {"name": "peer", "path": "/etc/etcd/pki/peer.crt", "not_after": None,
      "error": "Error while reading certificate file from disk: [Errno 2] No such file"}),
    ({"item": "ca", "skipped": True}, {"name": "ca", "path": "/etc/etcd/pki/ca.crt", "not_after": None,
                                       "error": "not read (task skipped)"}),
])
def test_cert_row_from_x509_certificate_info(result, row):
    f = health_filter.FilterModule().filters()["etcd_health_cert_row"]
    assert f(result, "/etc/etcd/pki/") == row


def test_cert_rows_feed_the_report():
    members = healthy_members()
    members["m1"]["certs"] = [health_filter.etcd_health_cert_row({"item": "admin", "failed": True, "msg": "denied"},
                                                                 "/etc/etcd/pki")]
    assert report(members=members)["attention"] == [
        "m1 (etcd-1): certificate admin (/etc/etcd/pki/admin.crt) could not be read: denied: "
        "run playbooks/site.yml (renews certificates inside etcd_pki_renew_days)"]


def test_filter_accepts_unset_and_refuses_wrong_types():
    assert health_filter.etcd_health_report(None, None, None, None, NOW)["attention"][0].startswith("cluster:")
    with pytest.raises(AnsibleFilterError, match="members must be a dict"):
        health_filter.etcd_health_report(healthy_status(), ["m1"], {}, {}, NOW)


def test_inputs_are_not_changed():
    status, members, drills = healthy_status(), healthy_members(), healthy_drills()
    before = copy.deepcopy((status, members, drills))
    health_report(status, members, drills, {"health_took_ms": 1}, NOW)
    assert (status, members, drills) == before


def test_an_expiring_ca_points_at_the_ca_renewal_not_at_leaf_renewal():
    members = healthy_members()
    members["m2"]["certs"].append(_cert("ca", 10))
    items = report(members=members)["attention"]
    assert len(items) == 1 and items[0].startswith("m2 (etcd-2): certificate ca (/etc/etcd/pki/ca.crt) expires in 10.0 days")
    assert "move ca.crt aside" in items[0] and "renews certificates" not in items[0]
