"""playbooks/maintenance.yml on this scenario's cluster once test_upgrade.py is done with it
(pytest runs this file after that one): 3.5.30, authentication on, the writer's certificate issued.

In file order: the plan in check mode and a refused member name (nothing changes); a
defragmentation under the writer's load, leader last, no acknowledged write lost, and a re-run
with nothing to do; then NOSPACE: a small quota filled until etcd raises the alarm, a defrag run
refused, the recovery, writes work again and every write acknowledged before is there.
"""
from __future__ import annotations

import json
import re
import subprocess

from conftest import Writer

from harness import run_site, snapshot, ssh

ALL = {"u1": {}, "u2": {}, "u3": {}}
CLUSTER = ["-e", "etcd_version=3.5.30", "-e", "etcd_rbac_enabled=true"]
MIB = 2**20


def maintenance(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return run_site(tmp_path, ALL, *CLUSTER, *extra, playbook="maintenance")


def flat(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def admin(script: str, check: bool = True) -> subprocess.CompletedProcess:
    return ssh("u1", "sudo bash -lc '%s'" % script, check=check)


def make_free_space(prefix: str, count: int = 40) -> None:
    """Write ~16 MiB, delete it and compact: the pages are free inside every member's database."""
    admin("head -c 300000 /dev/urandom | base64 -w0 > /tmp/value; "
          "for i in $(seq 1 %d); do etcdctl put %s$i < /tmp/value >/dev/null; done; etcdctl del --prefix %s >/dev/null; "
          "rev=$(etcdctl endpoint status -w fields | awk \"/\\\"Revision\\\"/ {print \\$NF; exit}\"); "
          "etcdctl compact --physical $rev >/dev/null" % (count, prefix, prefix))


def databases() -> dict:
    """Each member's database size, who leads, and the alarms: what a maintenance run changes."""
    status = admin("etcdctl endpoint status --cluster -w json").stdout
    alarms = admin("etcdctl alarm list").stdout
    return {"status": sorted((s["Endpoint"], s["Status"]["dbSize"], s["Status"]["leader"]) for s in json.loads(status)),
            "alarms": alarms}


def test_check_mode_prints_the_plan_and_changes_nothing(tmp_path):
    make_free_space("/maintenance/plan/")
    before, databases_before = snapshot(), databases()
    planned = maintenance(tmp_path, "--check", "-e", "etcd_maintenance_defrag_min_free_bytes=%d" % MIB)
    out = flat(planned)
    assert planned.returncode == 0, out[-3000:]
    assert not re.search(r"changed=[1-9]", planned.stdout)
    assert databases() == databases_before
    turns = re.findall(r"defragment \d: (u\d)( \(leader)?", out)
    assert len(turns) == 3 and [bool(t[1]) for t in turns] == [False, False, True], turns
    assert "Check mode: nothing changes." in out
    assert snapshot() == before


def test_a_member_name_not_in_the_cluster_is_refused_and_nothing_changes(tmp_path):
    before = snapshot()
    refused = maintenance(tmp_path, "-e", '{"etcd_maintenance_members": ["u9"]}')
    out = flat(refused)
    assert refused.returncode != 0 and "etcd_maintenance_members names u9, not a voting member" in out, out[-3000:]
    assert not re.search(r"changed=[1-9]", refused.stdout)
    assert snapshot() == before


def test_a_defrag_under_load_goes_leader_last_and_loses_no_write(tmp_path):
    make_free_space("/maintenance/defrag/")
    writer = Writer(tmp_path, "/writer/defrag/").start()
    try:
        done = maintenance(tmp_path, "-e", "etcd_maintenance_defrag_min_free_bytes=%d" % MIB)
    finally:
        report = writer.stop()
    out = flat(done)
    assert done.returncode == 0, out[-3000:]
    rows = re.findall(r"(u\d) +([\d.]+) MiB +([\d.]+) MiB +[\d.]+", out)
    assert len(rows) == 3 and all(float(after) < float(before) for _, before, after in rows), rows
    # The leader's turn came last, after it handed leadership over.
    assert re.search(r"Hand leadership away from %s\] \*+ changed" % rows[-1][0], out), out[-3000:]
    checked = writer.verify()
    assert checked["missing_count"] == 0 and checked["present"] == len(report["acked"]) > 50, checked
    again = maintenance(tmp_path / "again", "-e", "etcd_maintenance_defrag_min_free_bytes=%d" % MIB)
    assert again.returncode == 0 and "nothing to defragment" in flat(again), flat(again)[-3000:]
    assert re.search(r"changed=0\s", again.stdout) and not re.search(r"changed=[1-9]", again.stdout)


def test_nospace_is_recovered_and_every_write_before_it_is_kept(tmp_path):
    small = run_site(tmp_path / "quota", ALL, *CLUSTER, "-e", "etcd_quota_backend_bytes=%d" % (24 * MIB))
    assert small.returncode == 0, flat(small)[-3000:]
    admin("for i in $(seq 1 30); do etcdctl put /maintenance/keep/$i v$i >/dev/null; done")
    # Fill with the history of one key until etcd refuses: only compaction can free that
    # space, so the recovery must compact as well as defragment. The last value acknowledged
    # is the one that must be there.
    filled = admin("n=0; for i in $(seq 1 200); do (echo $i; head -c 300000 /dev/urandom | base64 -w0) "
                   "| etcdctl put /maintenance/fill >/dev/null 2>/tmp/err || break; n=$i; done; echo $n; cat /tmp/err")
    acked = int(filled.stdout.split()[0])
    assert "database space exceeded" in filled.stdout and 0 < acked < 200, filled.stdout
    assert "NOSPACE" in admin("etcdctl alarm list").stdout

    before = snapshot()
    refused = maintenance(tmp_path / "defrag")
    assert refused.returncode != 0 and "recover with -e etcd_maintenance_mode=nospace" in flat(refused)
    assert snapshot() == before

    recovered = maintenance(tmp_path / "nospace", "-e", "etcd_maintenance_mode=nospace")
    out = flat(recovered)
    assert recovered.returncode == 0, out[-3000:]
    assert out.index("Compact the history") < out.index("Defragment u") < out.index("Disarm the NOSPACE alarm")
    assert admin("etcdctl alarm list").stdout.strip() == ""
    assert admin("etcdctl put /maintenance/after ok").stdout.strip() == "OK"
    kept = admin("etcdctl get /maintenance/keep/ --prefix --keys-only | grep -c keep").stdout.strip()
    last = admin("etcdctl get /maintenance/fill --print-value-only | head -n 1").stdout.strip()
    # The put that raised the alarm may be stored too: etcd's quota check runs after the apply
    # and answers "database space exceeded" for a write it has kept. Nothing acknowledged is lost.
    assert int(kept) == 30 and last in (str(acked), str(acked + 1)), (kept, last, acked)
    sizes = [s["Status"]["dbSize"] for s in json.loads(admin("etcdctl endpoint status --cluster -w json").stdout)]
    assert len(sizes) == 3 and max(sizes) < 12 * MIB, sizes  # the history went, not just free pages
    again = maintenance(tmp_path / "again", "-e", "etcd_maintenance_mode=nospace")
    assert again.returncode == 0 and "nothing to recover" in flat(again)
    assert not re.search(r"changed=[1-9]", again.stdout)
