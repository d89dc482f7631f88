"""playbooks/restore-drill.yml: the newest verified backup restored into a scratch cluster
on the drill host (rd1), checked, torn down, reported; production untouched throughout."""
from __future__ import annotations

import json
import re
import subprocess

from conftest import DRILL, MEMBERS, etcdctl

from harness import run_site, snapshot, ssh

ALL = {"r1": {}, "r2": {}, "r3": {}}


def flat(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def drill(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return run_site(tmp_path, ALL, "-e", "etcd_drill_report_dir=%s" % (tmp_path / "reports"),
                    "-e", "etcd_backup_fetch_dir=%s" % (tmp_path / "snapshots"), *extra, playbook="restore_drill",
                    drill_hosts=["rd1"])


def metrics() -> dict:
    text = ssh(DRILL, "cat /var/lib/prometheus/node-exporter/etcd_restore_drill.prom").stdout
    return {line.split("{")[0]: float(line.split()[-1]) for line in text.splitlines() if line and not line.startswith("#")}


def test_a_drill_restores_the_newest_backup_and_leaves_production_alone(tmp_path):
    etcdctl("r1", "put /shop/drill/probe here")
    taken = run_site(tmp_path / "backup", ALL, "-e", "etcd_backup_fetch_dir=%s" % (tmp_path / "b"), playbook="backup")
    assert taken.returncode == 0, flat(taken)[-3000:]
    newest = next((tmp_path / "b").glob("*.db")).name
    before = snapshot()
    members = etcdctl("r1", "member list").stdout
    done = drill(tmp_path, "-e", '{"etcd_drill_expected_keys": ["/shop/drill/probe"]}')
    out = flat(done)
    assert done.returncode == 0, out[-4000:]
    assert snapshot() == before and etcdctl("r1", "member list").stdout == members
    (report_file,) = (tmp_path / "reports").glob("drill-*.json")
    report = json.loads(report_file.read_text())
    assert report["ok"] and report["snapshot"] == newest and report["problems"] == []
    assert report["members"] == 3 and report["keys"] > 0 and report["revision"] > 0
    assert 0 < report["rto_seconds"] < 300 and 0 <= report["rpo_seconds"] < 3600
    assert re.search(r"RTO", out) and re.search(r"RPO", out)
    # Torn down: no scratch member runs, no scratch data stays, the copy of production data is gone.
    assert ssh(DRILL, "pgrep -u etcd-drill etcd", check=False).returncode == 1
    assert ssh(DRILL, "sudo sh -c 'ls -d /var/lib/etcd-drill/run-* /var/lib/etcd-drill/incoming/*.db'",
               check=False).stdout.strip() == ""
    m = metrics()
    assert m["etcd_restore_drill_success"] == 1 and m["etcd_restore_drill_rto_seconds"] == report["rto_seconds"]
    assert m["etcd_restore_drill_last_success_timestamp_seconds"] > 0


def test_a_drill_that_misses_an_expected_key_fails_and_is_counted(tmp_path):
    last_success = metrics()["etcd_restore_drill_last_success_timestamp_seconds"]
    failures = metrics()["etcd_restore_drill_failures_total"]
    failed = drill(tmp_path, "-e", '{"etcd_drill_expected_keys": ["/no/such/key"]}')
    out = flat(failed)
    assert failed.returncode != 0 and "/no/such/key" in out, out[-3000:]
    m = metrics()
    assert m["etcd_restore_drill_success"] == 0 and m["etcd_restore_drill_failures_total"] == failures + 1
    assert m["etcd_restore_drill_last_success_timestamp_seconds"] == last_success
    assert ssh(DRILL, "pgrep -u etcd-drill etcd", check=False).returncode == 1
    assert all(etcdctl(n, "endpoint health", check=False).returncode == 0 for n in MEMBERS)
