"""The backup job's rules and its flow, with etcdctl/etcdutl/rclone played by a fake.

The real tools run in the molecule `default` scenario; here each step's decision is
pinned: who takes the snapshot, what counts as verified, what retention prunes, what
a failed upload leaves behind, and what the metrics say afterwards.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_backup as eb

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 21, 12, 30, tzinfo=UTC)


def names_at(*stamps: str, cluster: str = "lab") -> list[str]:
    return [f"etcd-{cluster}-{s}-r{i + 1}.db" for i, s in enumerate(stamps)]


# -- names --------------------------------------------------------------------

def test_name_round_trip():
    name = eb.snapshot_name("lab", NOW, 42)
    assert name == "etcd-lab-20261121T123000Z-r42.db"
    snap = eb.parse_snapshot_name(name, "lab")
    assert snap and snap.revision == 42 and snap.taken == NOW


@pytest.mark.parametrize("name", [
    "etcd-lab-20261121T123000Z-r42.db.sha256", "etcd-lab-20261121T1230Z-r42.db", "notes.txt",
    "etcd-lab-20261121T123000Z.db", "etcd-other-20261121T123000Z-r1.db",
])
def test_foreign_names_are_not_ours(name):
    assert eb.parse_snapshot_name(name, "lab") is None


def test_cluster_with_dashes_parses():
    snap = eb.parse_snapshot_name("etcd-prod-eu-1-20261121T123000Z-r7.db", "prod-eu-1")
    assert snap and snap.revision == 7


# -- retention ----------------------------------------------------------------

def test_keep_last_and_one_per_day():
    stamps = ["20261121T1000%02dZ" % i for i in range(5)] + [
        "20261120T230000Z", "20261120T010000Z", "20261119T120000Z", "20261110T000000Z"]
    names = names_at(*stamps)
    keep, prune = eb.retention_plan(names, "lab", keep_last=3, keep_daily=3, now=NOW)
    by_stamp = {n.split("-")[2]: n for n in names}
    # 3 newest of today, plus the newest of the 20th and of the 19th.
    assert sorted(keep) == sorted([by_stamp["20261121T100004Z"], by_stamp["20261121T100003Z"],
                                   by_stamp["20261121T100002Z"], by_stamp["20261120T230000Z"],
                                   by_stamp["20261119T120000Z"]])
    assert sorted(prune) == sorted([by_stamp["20261121T100001Z"], by_stamp["20261121T100000Z"],
                                    by_stamp["20261120T010000Z"], by_stamp["20261110T000000Z"]])


def test_newest_is_never_pruned_even_with_zero_settings():
    names = names_at("20260101T000000Z", "20260102T000000Z")
    keep, prune = eb.retention_plan(names, "lab", keep_last=0, keep_daily=0, now=NOW)
    assert keep == [names[1]] and prune == [names[0]]


def test_retention_ignores_other_files_and_clusters():
    names = names_at("20261121T100000Z") + ["etcd-other-20200101T000000Z-r1.db", "manual-copy.db"]
    keep, prune = eb.retention_plan(names, "lab", keep_last=1, keep_daily=0, now=NOW)
    assert keep == [names[0]] and prune == []


def test_nothing_pruned_when_inside_limits():
    names = names_at("20261121T100000Z", "20261121T110000Z")
    assert eb.retention_plan(names, "lab", 24, 7, NOW)[1] == []


# -- verification -------------------------------------------------------------

def write_snapshot(path: Path, body_size: int = 20480, corrupt: bool = False) -> bytes:
    body = os.urandom(body_size)
    trailer = hashlib.sha256(body).digest()
    if corrupt:
        body = bytes([body[0] ^ 0xFF]) + body[1:]  # always differs (a random body may start with 0)
    path.write_bytes(body + trailer)
    return body + trailer


def test_digest_accepts_etcd_trailer(tmp_path):
    data = write_snapshot(tmp_path / "s.db")
    whole, ok = eb.file_digests(str(tmp_path / "s.db"), chunk=4096)
    assert ok and whole == hashlib.sha256(data).hexdigest()


def test_digest_rejects_flipped_byte(tmp_path):
    write_snapshot(tmp_path / "s.db", corrupt=True)
    assert eb.file_digests(str(tmp_path / "s.db"))[1] is False


def test_digest_rejects_truncation_and_copies_of_the_db(tmp_path):
    data = write_snapshot(tmp_path / "s.db")
    (tmp_path / "t.db").write_bytes(data[:-100])
    (tmp_path / "raw.db").write_bytes(data[:-32])  # a copied db file has no trailer
    assert eb.file_digests(str(tmp_path / "t.db"))[1] is False
    assert eb.file_digests(str(tmp_path / "raw.db"))[1] is False


def test_parse_snapshot_status_real_output():
    # etcdutl 3.5.30 `snapshot status -w json` (captured in the lab).
    out = '{"hash":3546281011,"revision":12,"totalKey":19,"totalSize":28672}\n'
    st = eb.parse_snapshot_status(out)
    assert (st.revision, st.total_keys, st.total_size) == (12, 19, 28672)
    with pytest.raises(eb.BackupError):
        eb.parse_snapshot_status("Error: snapshot file integrity check failed")


@pytest.mark.parametrize("kwargs, needle", [
    ({"trailer_ok": False}, "trailer"),
    ({"size": 100}, "below the floor"),
    ({"keys": 0}, "no keys"),
    ({"revision": 5}, "older than"),
])
def test_verify_problems(kwargs, needle):
    args = {"size": 30000, "trailer_ok": True, "keys": 10, "revision": 50}
    args.update(kwargs)
    st = eb.SnapshotStatus(hash=1, revision=args["revision"], total_keys=args["keys"], total_size=1)
    problems = eb.verify_problems(args["size"], args["trailer_ok"], st, 16384, 40)
    assert len(problems) == 1 and needle in problems[0]
    assert eb.verify_problems(30000, True, eb.SnapshotStatus(1, 50, 10, 1), 16384, 40) == []


# -- the flow -----------------------------------------------------------------

class FakeHost:
    """Plays etcdctl, etcdutl and rclone (a folder stands in for the remote)."""

    def __init__(self, tmp: Path, leads: bool = True, revision: int = 100):
        self.tmp, self.leads, self.revision = tmp, leads, revision
        self.remote_dir = tmp / "remote"
        self.remote_dir.mkdir()
        self.remote_up = True
        self.corrupt = False
        self.calls: list[list[str]] = []

    def __call__(self, argv):
        argv = list(argv)
        self.calls.append(argv)
        tool = os.path.basename(argv[0])
        args = [a for a in argv[1:] if not a.startswith("--")]
        if tool == "etcdctl" and args[:2] == ["endpoint", "status"]:
            me, leader = (1, 1) if self.leads else (1, 2)
            return 0, json.dumps([{"Endpoint": "https://10.0.0.1:2379", "Status": {
                "header": {"cluster_id": 9, "member_id": me, "revision": self.revision, "raft_term": 2},
                "version": "3.5.30", "dbSize": 20480, "leader": leader, "raftIndex": 5}}]), ""
        if tool == "etcdctl" and args[:2] == ["member", "list"]:
            return 0, json.dumps({"header": {"member_id": 1}, "members": [
                {"ID": 1, "name": "m1", "peerURLs": [], "clientURLs": []},
                {"ID": 2, "name": "m2", "peerURLs": [], "clientURLs": []}]}), ""
        if tool == "etcdctl" and args[:2] == ["snapshot", "save"]:
            write_snapshot(Path(args[2]), corrupt=self.corrupt)
            return 0, "Snapshot saved at " + args[2], ""
        if tool == "etcdutl" and args[:2] == ["snapshot", "status"]:
            return 0, json.dumps({"hash": 1, "revision": self.revision, "totalKey": 7,
                                  "totalSize": 20480}), ""
        if tool == "rclone":
            return self.rclone(argv)
        raise AssertionError(f"unexpected command {argv}")

    def rclone(self, argv):
        if not self.remote_up:
            return 1, "", "Failed to copyto: dial tcp 10.0.0.9:9000: connect: connection refused"
        i = argv.index("--low-level-retries") + 2
        verb, rest = argv[i], argv[i + 1:]
        local = lambda spec: self.remote_dir / spec.split("/", 1)[1].split("/", 1)[1]  # noqa: E731
        if verb == "copyto":
            shutil.copyfile(rest[0], local(rest[1]))
            return 0, "", ""
        if verb == "lsjson":
            p = local(rest[0])
            return 0, json.dumps([{"Name": p.name, "Size": p.stat().st_size}] if p.exists() else []), ""
        if verb == "lsf":
            return 0, "".join(n + "\n" for n in sorted(os.listdir(self.remote_dir))), ""
        if verb == "deletefile":
            local(rest[0]).unlink()
            return 0, "", ""
        raise AssertionError(verb)


def with_status(host: FakeHost, mutate):
    """The host, with `endpoint status` answers changed by ``mutate(status_dict)``."""
    def run(argv):
        rc, out, err = host(argv)
        if "endpoint" in argv and "status" in argv:
            doc = json.loads(out)
            mutate(doc[0]["Status"])
            out = json.dumps(doc)
        return rc, out, err
    return run


@pytest.fixture
def cfg(tmp_path):
    (tmp_path / "backups").mkdir()
    (tmp_path / "state").mkdir()
    return eb.Config(cluster="lab", endpoint="https://10.0.0.1:2379", cacert="ca", cert="c", key="k",
                     directory=str(tmp_path / "backups"), state_file=str(tmp_path / "state/state.json"),
                     metrics_file=str(tmp_path / "etcd_backup.prom"), etcdctl="/usr/local/bin/etcdctl",
                     etcdutl="/usr/local/bin/etcdutl", keep_last=2, keep_daily=0,
                     rclone_config=str(tmp_path / "rclone.conf"), remote="s3:bucket/etcd",
                     remote_keep_last=3, remote_keep_daily=0)


class Clock:
    def __init__(self, start: dt.datetime):
        self.t = start.timestamp()

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def metric(cfg, name):
    for line in Path(cfg.metrics_file).read_text().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if name.endswith("_total"):
                continue
            return float(line.split()[-1])
    raise KeyError(name)


def failures(cfg, stage):
    for line in Path(cfg.metrics_file).read_text().splitlines():
        if line.startswith(f'etcd_backup_failures_total{{stage="{stage}"}}'):
            return int(line.split()[-1])
    raise KeyError(stage)


def test_leader_takes_verifies_names_and_uploads(cfg, tmp_path):
    host = FakeHost(tmp_path)
    res = eb.run_locked(cfg, host, now=Clock(NOW), log=lambda m: None)
    assert res.rc == 0 and res.action == "taken" and res.uploaded, res.message
    name = os.path.basename(res.snapshot)
    assert name == "etcd-lab-20261121T123001Z-r100.db"
    files = sorted(os.listdir(cfg.directory))
    assert files == [".incoming", name, name + ".sha256"]
    digest = (Path(cfg.directory) / (name + ".sha256")).read_text().split()[0]
    assert digest == hashlib.sha256((Path(cfg.directory) / name).read_bytes()).hexdigest()
    assert sorted(os.listdir(host.remote_dir)) == [name, name + ".sha256"]
    assert metric(cfg, "etcd_backup_last_run_success") == 1
    assert metric(cfg, "etcd_backup_last_revision") == 100
    assert metric(cfg, "etcd_backup_last_success_timestamp_seconds") > NOW.timestamp()
    assert metric(cfg, "etcd_backup_upload_last_success_timestamp_seconds") > 0
    # The snapshot came from the local member only (snapshot save takes one endpoint).
    save = [c for c in host.calls if "save" in c][0]
    assert "--endpoints=https://10.0.0.1:2379" in save and any(a.startswith("--command-timeout=") for a in save)


def test_follower_skips_and_names_the_leader(cfg, tmp_path):
    host = FakeHost(tmp_path, leads=False)
    res = eb.run_locked(cfg, host, now=Clock(NOW))
    assert res.rc == 0 and res.action == "skipped" and "m2 leads" in res.message
    assert not [c for c in host.calls if "save" in c]
    assert metric(cfg, "etcd_backup_last_run_success") == 1
    assert metric(cfg, "etcd_backup_last_success_timestamp_seconds") == 0


def test_force_takes_it_on_a_follower(cfg, tmp_path):
    res = eb.run_locked(cfg, FakeHost(tmp_path, leads=False), force=True, now=Clock(NOW))
    assert res.action == "taken"


def test_corrupt_snapshot_is_kept_aside_and_counted(cfg, tmp_path):
    host = FakeHost(tmp_path)
    host.corrupt = True
    res = eb.run_locked(cfg, host, now=Clock(NOW))
    assert res.rc == 1 and res.stage == "verify" and "trailer" in res.message
    assert os.listdir(os.path.join(cfg.directory, "failed")) == ["etcd-lab-20261121T123001Z.db"]
    assert [n for n in os.listdir(cfg.directory) if n.endswith(".db")] == []
    assert failures(cfg, "verify") == 1 and metric(cfg, "etcd_backup_last_run_success") == 0
    assert not [c for c in host.calls if os.path.basename(c[0]) == "rclone"]


def test_a_state_file_that_cannot_be_written_still_counts_as_a_failure(cfg, tmp_path):
    os.makedirs(cfg.state_file)  # a folder where the file belongs: every write of it fails
    res = eb.run_locked(cfg, FakeHost(tmp_path), now=Clock(NOW))
    assert res.rc == 1 and res.stage == "state" and cfg.state_file in res.message
    assert failures(cfg, "state") == 1 and metric(cfg, "etcd_backup_last_run_success") == 0
    # The snapshot itself was taken and verified.
    assert metric(cfg, "etcd_backup_last_success_timestamp_seconds") > NOW.timestamp()


def test_remote_down_keeps_local_copy_and_raises_failure_metric(cfg, tmp_path):
    host = FakeHost(tmp_path)
    clock = Clock(NOW)
    assert eb.run_locked(cfg, host, now=clock).rc == 0
    host.remote_up = False
    res = eb.run_locked(cfg, host, now=clock)
    assert res.rc == 1 and res.stage == "upload" and "connection refused" in res.message
    assert res.snapshot and os.path.exists(os.path.join(cfg.directory, res.snapshot))
    assert failures(cfg, "upload") == 1 and metric(cfg, "etcd_backup_last_run_success") == 0
    # The local snapshot still counts as a verified backup.
    assert metric(cfg, "etcd_backup_last_success_timestamp_seconds") > NOW.timestamp()
    host.remote_up = True
    assert eb.run_locked(cfg, host, now=clock).rc == 0
    assert failures(cfg, "upload") == 1 and metric(cfg, "etcd_backup_last_run_success") == 1


def test_retention_local_and_remote_over_runs(cfg, tmp_path):
    host = FakeHost(tmp_path)
    clock = Clock(NOW)
    taken = []
    for rev in range(101, 106):
        host.revision = rev
        taken.append(os.path.basename(eb.run_locked(cfg, host, now=clock).snapshot))
    local = sorted(n for n in os.listdir(cfg.directory) if n.endswith(".db"))
    remote = sorted(n for n in os.listdir(host.remote_dir) if n.endswith(".db"))
    assert local == sorted(taken[-2:])          # keep_last=2
    assert remote == sorted(taken[-3:])         # remote_keep_last=3
    assert sorted(os.listdir(host.remote_dir)) == sorted(remote + [n + ".sha256" for n in remote])
    assert metric(cfg, "etcd_backup_local_snapshots") == 2


def test_unverified_and_foreign_files_survive_retention(cfg, tmp_path):
    d = Path(cfg.directory)
    (d / "etcd-lab-20200101T000000Z-r1.db").write_bytes(b"x")  # no .sha256: not ours to judge
    (d / "operator-notes.txt").write_text("keep me")
    host = FakeHost(tmp_path)
    clock = Clock(NOW)
    for _ in range(4):
        eb.run_locked(cfg, host, now=clock)
    assert (d / "etcd-lab-20200101T000000Z-r1.db").exists() and (d / "operator-notes.txt").exists()


def test_no_leader_fails_with_status_stage(cfg, tmp_path):
    no_leader = with_status(FakeHost(tmp_path), lambda st: st.pop("leader"))
    res = eb.run_locked(cfg, no_leader, now=Clock(NOW))
    assert res.rc == 1 and res.stage == "status" and "no leader" in res.message
    assert failures(cfg, "status") == 1


def test_lock_refuses_a_second_run(cfg, tmp_path):
    import fcntl
    with open(os.path.join(os.path.dirname(cfg.state_file), "lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        res = eb.run_locked(cfg, FakeHost(tmp_path), now=Clock(NOW))
    assert res.rc == eb.EXIT_BUSY


def test_metrics_text_is_valid_exposition():
    text = eb.render_metrics(eb.State(last_duration_seconds=1.25), 3600)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert "etcd_backup_interval_seconds 3600" in lines
    assert "etcd_backup_last_duration_seconds 1.250" in lines
    assert sum(ln.startswith("etcd_backup_failures_total{") for ln in lines) == len(eb.STAGES)
    assert text.endswith("\n")


def test_config_rejects_unknown_keys(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"cluster": "x", "typo_keep_last": 3}))
    with pytest.raises(ValueError, match="typo_keep_last"):
        eb.Config.from_file(str(p))


def test_calendar_interval_from_systemd_analyze():
    # systemd 252 `systemd-analyze calendar --iterations=3 hourly`, TZ=UTC.
    out = """  Original form: hourly
Normalized form: *-*-* *:00:00
    Next elapse: Sat 2026-11-21 09:00:00 UTC
       From now: 35min left
       Iter. #2: Sat 2026-11-21 10:00:00 UTC
       From now: 1h 35min left
       Iter. #3: Sat 2026-11-21 11:00:00 UTC
       From now: 2h 35min left
"""
    assert eb.calendar_interval(out) == 3600
    weekly_ish = out.replace("2026-11-21 11:00:00", "2026-11-23 10:00:00")
    assert eb.calendar_interval(weekly_ish) == 2 * 86400
    assert eb.calendar_interval("Failed to parse calendar specification") == 0


def test_config_coerces_rendered_strings(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"cluster": "x", "endpoint": "e", "cacert": "a", "cert": "b", "key": "c",
                             "directory": "d", "state_file": "s", "metrics_file": "m",
                             "keep_last": "24", "interval_seconds": "3600"}))
    cfg = eb.Config.from_file(str(p))
    assert cfg.keep_last == 24 and cfg.interval_seconds == 3600


def test_last_run_file_tells_playbooks_what_happened(cfg, tmp_path):
    eb.run_locked(cfg, FakeHost(tmp_path), now=Clock(NOW))
    last = json.loads((Path(cfg.state_file).parent / "last-run.json").read_text())
    assert last["action"] == "taken" and last["snapshot"].endswith("-r100.db") and len(last["sha256"]) == 64


def test_untouched_cluster_snapshot_is_valid():
    # A new cluster (header revision 1, no writes yet) snapshots as revision 0 with 8 keys
    # (etcdutl 3.5.30 counts keys of every bucket, membership included).
    assert eb.verify_problems(20512, True, eb.SnapshotStatus(1, 0, 8, 20480), 16384, 1) == []
    assert eb.verify_problems(20512, True, eb.SnapshotStatus(1, 0, 8, 20480), 16384, 2) != []


def test_missing_rclone_fails_the_upload_step_and_keeps_the_snapshot(cfg, tmp_path):
    host = FakeHost(tmp_path)
    orig = host.__call__

    def no_rclone(argv):
        if os.path.basename(argv[0]) == "rclone":
            return 127, "", "/usr/bin/rclone: No such file or directory"
        return orig(argv)
    res = eb.run_locked(cfg, no_rclone, now=Clock(NOW))
    assert res.rc == 1 and res.stage == "upload" and "No such file" in res.message
    assert os.path.exists(res.snapshot) and os.path.exists(res.snapshot + ".sha256")
    assert failures(cfg, "upload") == 1 and metric(cfg, "etcd_backup_last_success_timestamp_seconds") > 0


def test_unexpected_errors_still_reach_the_metrics(cfg, tmp_path):
    host = FakeHost(tmp_path)
    orig = host.__call__

    def garbage_listing(argv):
        if os.path.basename(argv[0]) == "rclone" and "lsjson" in argv:
            return 0, "not json", ""
        return orig(argv)
    res = eb.run_locked(cfg, garbage_listing, now=Clock(NOW))
    assert res.rc == 1 and res.stage == "upload" and res.message.startswith("JSONDecodeError")
    assert failures(cfg, "upload") == 1 and metric(cfg, "etcd_backup_last_run_success") == 0
    assert json.loads((Path(cfg.state_file).parent / "last-run.json").read_text())["action"] == "failed"


def test_killed_run_leftovers_are_cleared_and_failed_copies_capped(cfg, tmp_path):
    incoming = Path(cfg.directory) / ".incoming"
    incoming.mkdir()
    (incoming / "etcd-lab-20261121T000000Z.db.part").write_bytes(b"half")
    host = FakeHost(tmp_path)
    host.corrupt = True
    clock = Clock(NOW)
    seen = set()
    for _ in range(4):
        assert eb.run_locked(cfg, host, now=clock).stage == "verify"
        seen |= set(os.listdir(Path(cfg.directory) / "failed"))
    assert os.listdir(incoming) == []
    kept = sorted(os.listdir(Path(cfg.directory) / "failed"))
    assert len(seen) == 4 and kept == sorted(seen)[-2:]  # the newest two stay


def test_refuses_to_start_without_room_for_the_snapshot(cfg, tmp_path):
    host = FakeHost(tmp_path)
    huge_db = with_status(host, lambda st: st.update(dbSize=1 << 60))
    res = eb.run_locked(cfg, huge_db, now=Clock(NOW))
    assert res.rc == 1 and res.stage == "snapshot" and "free" in res.message
    assert not [c for c in host.calls if "save" in c]


def test_a_former_leader_still_prunes_its_own_snapshots(cfg, tmp_path):
    host = FakeHost(tmp_path)
    clock = Clock(NOW)
    for _ in range(4):
        eb.run_locked(cfg, host, now=clock)
    snaps = lambda: sorted(n for n in os.listdir(cfg.directory) if n.endswith(".db"))  # noqa: E731
    assert len(snaps()) == 2
    cfg.keep_last = 1
    host.leads = False
    res = eb.run_locked(cfg, host, now=clock)
    assert res.action == "skipped" and len(res.pruned_local) == 1 and len(snaps()) == 1
    assert metric(cfg, "etcd_backup_local_snapshots") == 1


def test_first_run_time_is_kept_across_runs(cfg, tmp_path):
    host = FakeHost(tmp_path, leads=False)
    clock = Clock(NOW)
    eb.run_locked(cfg, host, now=clock)
    first = metric(cfg, "etcd_backup_first_run_timestamp_seconds")
    eb.run_locked(cfg, host, now=clock)
    assert metric(cfg, "etcd_backup_first_run_timestamp_seconds") == first > 0
    assert metric(cfg, "etcd_backup_last_run_timestamp_seconds") > first


def test_scheduled_runs_wait_for_the_clusters_slot_and_manual_runs_do_not():
    elapse = NOW.timestamp()
    usec = str(int(elapse * 1e6))
    # Started by the timer at the scheduled second: wait the cluster's whole offset.
    assert eb.scheduled_wait(usec, 420, elapse + 0.2) == pytest.approx(419.8)
    # Started late (host was busy): wait only what is left; never more than the offset.
    assert eb.scheduled_wait(usec, 420, elapse + 500) == 0
    assert eb.scheduled_wait(str(int((elapse + 9999) * 1e6)), 420, elapse) == 420
    # Started by hand or by an older systemd: no variable, no wait.
    assert eb.scheduled_wait(None, 420, elapse) == 0 and eb.scheduled_wait("garbage", 420, elapse) == 0
