"""Backups on the real cluster: the timer's service started by hand, a real S3 server.

The off-host remote is moto's S3 server, started here on the scenario network's gateway
(the members' only route off their internal network) and reached by rclone on the members.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid

import boto3
import pytest

import harness
from conftest import MEMBERS

# etcd_backup_rclone_path is etcd-backups/molecule; the job adds the cluster name (molecule).
S3_HOST, S3_PORT, BUCKET, PREFIX = "172.31.241.1", 9000, "etcd-backups", "molecule/molecule"
BACKUPS = "/var/backups/etcd"


class S3Server:
    def __init__(self) -> None:
        self.proc = None
        self.client = boto3.client("s3", endpoint_url=f"http://{S3_HOST}:{S3_PORT}", region_name="us-east-1",
                                   aws_access_key_id="molecule", aws_secret_access_key="molecule-secret")

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", S3_HOST, "-p", str(S3_PORT)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection((S3_HOST, S3_PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        self.client.create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def objects(self) -> dict:
        listed = self.client.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX + "/")
        return {o["Key"][len(PREFIX) + 1:]: o["Size"] for o in listed.get("Contents", [])}


@pytest.fixture(scope="module")
def quiet_timers():
    """No timer-started run may meet the runs these tests start by hand.

    The hourly timer waits its per-cluster offset (up to 10 minutes) before it asks who
    leads; a run started by hand meanwhile would queue behind it, and a run it finished
    would add a snapshot the retention test does not expect. The timers (and any run they
    started) stop for these tests and start again after them.
    """
    for member in MEMBERS:
        harness.ssh(member, "sudo systemctl stop etcd-backup.timer etcd-backup.service")
    yield
    for member in MEMBERS:
        harness.ssh(member, "sudo systemctl start etcd-backup.timer")


@pytest.fixture(scope="module")
def s3(quiet_timers):
    server = S3Server()
    server.start()
    yield server
    server.stop()


def sh(member: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return harness.ssh(member, command, check=check)


def run_job(member: str) -> tuple[int, dict]:
    """Start the timer's service by hand, as an operator would; return (rc, last run)."""
    started = sh(member, "sudo systemctl start etcd-backup.service", check=False)
    last = json.loads(sh(member, "sudo cat /var/lib/etcd-backup/last-run.json").stdout)
    return started.returncode, last


def snapshots(member: str) -> list[str]:
    out = sh(member, f"sudo ls -1 {BACKUPS}").stdout.split()
    return sorted(n for n in out if n.endswith(".db"))


def metric(member: str, line_start: str) -> float:
    text = sh(member, "cat /var/lib/prometheus/node-exporter/etcd_backup.prom").stdout
    return float(next(ln.split()[-1] for ln in text.splitlines() if ln.startswith(line_start)))


def test_timer_is_scheduled_on_every_member():
    offsets = set()
    for member in MEMBERS:
        assert sh(member, "systemctl is-active etcd-backup.timer").stdout.strip() == "active"
        assert sh(member, "systemctl show -p User --value etcd-backup.service").stdout.strip() == "etcd-backup"
        # All members fire at the same second and wait the same per-cluster offset.
        timer = sh(member, "systemctl show -p RandomizedDelayUSec -p AccuracyUSec etcd-backup.timer").stdout.split()
        assert sorted(timer) == ["AccuracyUSec=1s", "RandomizedDelayUSec=0"]
        offsets.add(json.loads(sh(member, "sudo cat /etc/etcd-backup/config.json").stdout)["delay_seconds"])
    assert len(offsets) == 1 and 0 <= int(offsets.pop()) <= 600


def test_the_backup_account_cannot_replace_another_jobs_metrics_file():
    member = next(iter(MEMBERS))
    folder = "/var/lib/prometheus/node-exporter"
    assert sh(member, f"stat -c %a {folder}").stdout.strip() == "1775"
    victim = "etcd_certificates.prom"  # written by root's certificate expiry job
    before = sh(member, f"sudo sha256sum {folder}/{victim}").stdout
    attempt = sh(member, f"sudo -u etcd-backup sh -c 'echo x > {folder}/.t && mv -f {folder}/.t {folder}/{victim}'",
                 check=False)
    sh(member, f"sudo rm -f {folder}/.t")
    assert attempt.returncode != 0 and sh(member, f"sudo sha256sum {folder}/{victim}").stdout == before


def test_only_the_leader_takes_a_verified_snapshot_that_restores(s3):
    value = uuid.uuid4().hex
    sh("m1", f"sudo -i etcdctl put backup-probe {value}")
    lead = harness.leader_name()
    results = {m: run_job(m) for m in MEMBERS}
    taken = {m: r for m, (rc, r) in results.items() if r["action"] == "taken"}
    assert list(taken) == [lead], results
    for member, (rc, last) in results.items():
        assert rc == 0, (member, last)
        if member != lead:
            assert last["action"] == "skipped" and f"{lead} leads" in last["message"]
    snap = taken[lead]["snapshot"]
    name = snap.rsplit("/", 1)[1]
    assert re.fullmatch(r"etcd-molecule-\d{8}T\d{6}Z-r\d+\.db", name)
    # The .sha256 beside it checks out, and the file is the job's alone.
    assert sh(lead, f"sudo sh -c 'cd {BACKUPS} && sha256sum -c {name}.sha256'").returncode == 0
    assert sh(lead, f"sudo stat -c '%U %a' {snap}").stdout.split() == ["etcd-backup", "600"]
    # Restore into an empty data dir, start a throwaway one-member etcd on loopback, read the key.
    script = f"""set -e
d=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$d"' EXIT
etcdutl snapshot restore {snap} --data-dir "$d/data" --name probe \\
  --initial-cluster probe=http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 >/dev/null
# Auth is on in the snapshot too: serve it with TLS and read as the admin identity.
pki=/etc/etcd/pki
etcd --name probe --data-dir "$d/data" --listen-client-urls https://127.0.0.1:23790 \\
  --advertise-client-urls https://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \\
  --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster probe=http://127.0.0.1:23800 \\
  --cert-file $pki/server.crt --key-file $pki/server.key --trusted-ca-file $pki/ca.crt --client-cert-auth \\
  --listen-metrics-urls '' >"$d/log" 2>&1 &
pid=$!
for i in $(seq 50); do env -u ETCDCTL_CACERT -u ETCDCTL_CERT -u ETCDCTL_KEY -u ETCDCTL_ENDPOINTS \\
  etcdctl --endpoints https://127.0.0.1:23790 --cacert $pki/ca.crt --cert $pki/admin.crt --key $pki/admin.key \\
  get backup-probe --print-value-only 2>/dev/null && exit 0; sleep 0.2; done
cat "$d/log" >&2; exit 1
"""
    restored = sh(lead, "sudo bash -c " + _quote(script), check=False)
    assert restored.returncode == 0 and restored.stdout.strip() == value, restored.stderr[-2000:]
    # The off-host copy landed, whole.
    objects = s3.objects()
    size = int(sh(lead, f"sudo stat -c %s {snap}").stdout)
    assert objects.get(name) == size and name + ".sha256" in objects


def test_backup_playbook_fetches_a_verified_snapshot_to_the_controller(s3, tmp_path):
    fetched = tmp_path / "fetched"
    result = harness.run_site(tmp_path, {m: {} for m in MEMBERS}, "-e", f"etcd_backup_fetch_dir={fetched}",
                              playbook="backup")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    snaps = sorted(fetched.glob("*.db"))
    assert len(snaps) == 1 and (fetched / (snaps[0].name + ".sha256")).exists()
    digest = hashlib.sha256(snaps[0].read_bytes()).hexdigest()
    assert (fetched / (snaps[0].name + ".sha256")).read_text().split()[0] == digest
    # A snapshot holds every secret in the cluster: private on the controller too.
    assert fetched.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in fetched.iterdir())
    assert f"Verified snapshot {snaps[0].name}" in " ".join(result.stdout.split())


def test_retention_prunes_exactly_what_it_should(s3):
    lead = harness.leader_name()
    before = snapshots(lead)
    assert before, "the previous test left a snapshot"
    now = dt.datetime.now(dt.timezone.utc)
    day = lambda n, hh: (now - dt.timedelta(days=n)).strftime(f"%Y%m%dT{hh}0000Z")  # noqa: E731
    seeds = {  # keep_last=3, keep_daily=2 (today and yesterday)
        "yesterday_late": f"etcd-molecule-{day(1, '22')}-r5.db",
        "yesterday_early": f"etcd-molecule-{day(1, '01')}-r4.db",
        "two_days_ago": f"etcd-molecule-{day(2, '12')}-r3.db",
        "last_week": f"etcd-molecule-{day(7, '12')}-r2.db",
    }
    src = before[-1]
    cmds = [f"cp -p {src} {n} && sed 's/{src}/{n}/' {src}.sha256 > {n}.sha256 && chown etcd-backup: {n}.sha256"
            for n in seeds.values()]
    cmds += ["echo keep > operator-notes.txt", "cp -p {0} etcd-molecule-20200101T000000Z-r1.db".format(src)]
    sh(lead, "sudo sh -c " + _quote(f"cd {BACKUPS} && " + " && ".join(cmds)))
    rc, last = run_job(lead)
    assert rc == 0 and last["action"] == "taken", last
    new = last["snapshot"].rsplit("/", 1)[1]
    after = set(sh(lead, f"sudo ls -1 {BACKUPS}").stdout.split())
    # Newest first: this run's, the earlier real ones (all today), then the seeds.
    ordered = [new] + before[::-1] + [seeds[k] for k in ("yesterday_late", "yesterday_early",
                                                          "two_days_ago", "last_week")]
    # keep_last=3 keeps the first three; keep_daily=2 adds today's and yesterday's newest.
    expected_kept = set(ordered[:3]) | {new, seeds["yesterday_late"]}
    assert {n for n in after if n.endswith(".db") and n + ".sha256" in after} == expected_kept
    assert sorted(last["pruned_local"]) == sorted(set(ordered) - expected_kept)
    assert {seeds["yesterday_early"], seeds["two_days_ago"], seeds["last_week"]} <= set(last["pruned_local"])
    # Files the job did not verify are never its to delete.
    assert {"operator-notes.txt", "etcd-molecule-20200101T000000Z-r1.db"} <= after
    # The remote keeps its own count: the two newest.
    remote = sorted(n for n in s3.objects() if n.endswith(".db"))
    assert remote == sorted([new, before[-1]])
    sh(lead, f"sudo sh -c 'cd {BACKUPS} && rm -f operator-notes.txt etcd-molecule-20200101T000000Z-r1.db'")


DRILL_HOST = "172.31.241.20"  # mon: also the scenario's etcd_drill host, never a member
DRILL_DIR = "/var/lib/etcd-drill"


def drill_metric(line_start: str) -> float:
    text = sh(DRILL_HOST, "cat /var/lib/prometheus/node-exporter/etcd_restore_drill.prom").stdout
    return float(next(ln.split()[-1] for ln in text.splitlines() if ln.startswith(line_start)))


def prometheus(expr: str) -> list:
    url = "http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(expr)
    return json.loads(sh(DRILL_HOST, f"curl -sS -m 10 '{url}'").stdout)["data"]["result"]


def test_the_drill_timer_restores_the_newest_off_host_snapshot_and_prometheus_scrapes_it(s3):
    newest = max(n for n in s3.objects() if n.endswith(".db"))
    assert sh(DRILL_HOST, "systemctl is-enabled etcd-drill.timer").stdout.strip() == "enabled"
    assert sh(DRILL_HOST, "systemctl is-active etcd-drill.timer").stdout.strip() == "active"
    # What the timer starts, started by hand: it lists the remote and picks the newest itself.
    started = sh(DRILL_HOST, "sudo systemctl start etcd-drill.service", check=False)
    report = json.loads(sh(DRILL_HOST, f"sudo cat {DRILL_DIR}/last-report.json").stdout)
    assert started.returncode == 0 and report["ok"], report["problems"]
    assert report["snapshot"] == newest and report["keys"] > 0 and report["rto_seconds"] > 0
    # Production data never stays on the drill host; nor does the scratch cluster.
    left = sh(DRILL_HOST, f"sudo sh -c 'ls -A {DRILL_DIR}/incoming; ls -d {DRILL_DIR}/run-* 2>/dev/null'", check=False)
    assert left.stdout.strip() == ""
    finished = dt.datetime.fromisoformat(report["finished"].replace("Z", "+00:00")).timestamp()
    assert abs(drill_metric('etcd_restore_drill_last_success_timestamp_seconds{etcd_cluster="molecule"}') - finished) < 2

    # Prometheus scrapes the drill host's node_exporter over mTLS and keeps the drill's own label.
    expr = 'etcd_restore_drill_last_success_timestamp_seconds{job="drill",etcd_cluster="molecule"}'
    deadline = time.time() + 90
    while not [r for r in prometheus(expr) if abs(float(r["value"][1]) - finished) < 2] and time.time() < deadline:
        time.sleep(3)
    result = prometheus(expr)
    assert len(result) == 1 and abs(float(result[0]["value"][1]) - finished) < 2, result
    assert prometheus('etcd_restore_drill_success{job="drill",etcd_cluster="molecule"}')[0]["value"][1] == "1"


def test_a_scheduled_drill_that_cannot_reach_the_remote_fails_and_is_counted(s3):
    failures = drill_metric("etcd_restore_drill_failures_total")
    last_success = drill_metric("etcd_restore_drill_last_success_timestamp_seconds")
    s3.stop()
    try:
        started = sh(DRILL_HOST, "sudo systemctl start etcd-drill.service", check=False)
    finally:
        s3.start()
    report = json.loads(sh(DRILL_HOST, f"sudo cat {DRILL_DIR}/last-report.json").stdout)
    assert started.returncode != 0 and not report["ok"]
    assert any("remote:" in p for p in report["problems"]), report["problems"]
    assert drill_metric("etcd_restore_drill_failures_total") == failures + 1
    assert drill_metric("etcd_restore_drill_success") == 0
    assert drill_metric("etcd_restore_drill_last_success_timestamp_seconds") == last_success
    # With the remote back (moto starts empty: the backup job uploads again), the next drill
    # succeeds again and the failing alert clears.
    rc, last = run_job(harness.leader_name())
    assert rc == 0 and last["uploaded"], last
    again = sh(DRILL_HOST, "sudo systemctl start etcd-drill.service", check=False)
    assert again.returncode == 0, sh(DRILL_HOST, f"sudo cat {DRILL_DIR}/last-report.json").stdout
    assert drill_metric("etcd_restore_drill_success") == 1


def test_remote_down_keeps_the_local_snapshot_and_counts_the_failure(s3):
    lead = harness.leader_name()
    failures_before = metric(lead, 'etcd_backup_failures_total{stage="upload"}')
    s3.stop()
    try:
        rc, last = run_job(lead)
        assert rc != 0 and last["action"] == "failed" and last["stage"] == "upload", last
        name = last["snapshot"].rsplit("/", 1)[1]
        assert name in snapshots(lead)
        assert sh(lead, f"sudo sh -c 'cd {BACKUPS} && sha256sum -c {name}.sha256'").returncode == 0
        assert metric(lead, 'etcd_backup_failures_total{stage="upload"}') == failures_before + 1
        assert metric(lead, "etcd_backup_last_run_success") == 0
        # The journal says what failed.
        journal = sh(lead, "sudo journalctl -u etcd-backup.service -n 20 --no-pager").stdout
        assert "rclone" in journal and "failed" in journal
    finally:
        s3.start()
    rc, last = run_job(lead)
    assert rc == 0 and last["uploaded"], last
    assert metric(lead, "etcd_backup_last_run_success") == 1


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
