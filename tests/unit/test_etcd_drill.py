"""Restore drill (module_utils/etcd_drill.py, modules/etcd_drill.py): real scratch clusters of real etcd
binaries on 127.0.0.1, from the snapshot fixtures; the pure parts without binaries."""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import pwd
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import write_self_signed

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_drill as d

REPO = Path(__file__).resolve().parents[2]
RELEASES = REPO / ".cache" / "releases"
FIXTURES = Path(__file__).parent / "fixtures" / "etcd_snapshot"
EXPECTED = {row["file"]: row for row in json.loads((FIXTURES / "expected.json").read_text())}
# Written by tests/unit/fixtures/make_snapshots.sh, live in both fixtures.
PRESENT = ["/fixture/small/081", "/fixture/big/1", "/fixture/lease/2", "/fixture/txn/140"]


def bin_dir(version: str) -> Path:
    return RELEASES / ("v" + version) / ("etcd-v%s-linux-amd64" % version)


def needs(version: str):
    return pytest.mark.skipif(not (bin_dir(version) / "etcd").exists(),
                              reason="no etcd %s under %s (make tools downloads it)" % (version, RELEASES))


def drill_owner() -> str:
    """etcd when it exists; as root otherwise nobody, so the members really run as another account."""
    if os.geteuid() != 0:
        return getpass.getuser()
    for name in ("etcd", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    return "root"


OWNER = drill_owner()


def free_base(members: int = 3) -> int:
    """A base port whose 2 * members ports are all free on 127.0.0.1 (other etcds run on this machine)."""
    for _ in range(200):
        base = random.randrange(30000, 60000, 10)
        ports = [base + 10 * i + k for i in range(1, members + 1) for k in (0, 1)]
        if all(_bindable(port) for port in ports):
            return base
    raise RuntimeError("no free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def work():
    """The drill's work_dir; outside pytest's 0700 tmp folders so the owner can reach its run folder."""
    folder = Path(tempfile.mkdtemp(prefix="etcd-drill-test-"))
    folder.chmod(0o755)
    (folder / "textfile").mkdir()
    yield folder
    shutil.rmtree(folder)


def params(work: Path, file: str = "v3.5.30.db", **extra):
    row = EXPECTED[file]
    snap = FIXTURES / file
    out = dict(snapshot=str(snap), sha256=hashlib.sha256(snap.read_bytes()).hexdigest(),
               expected_revision=row["revision"], expected_keys=row["live_keys"], version=row["etcd"],
               bin_dir=str(bin_dir(row["etcd"])), cluster="prod", base_port=free_base(), work_dir=str(work / "drill"),
               owner=OWNER, textfile_dir=str(work / "textfile"), taken="2026-12-03T07:00:00Z")
    out.update(extra)
    return out


def metrics(work: Path) -> dict:
    text = (work / "textfile" / d.METRICS_FILE).read_text()
    return {line.split("{")[0]: float(line.split()[-1]) for line in text.splitlines() if line and line[0] != "#"}


def leftovers(work: Path) -> list:
    """Run folders still there and processes still running from them."""
    runs = sorted(str(p) for p in (work / "drill").glob("run-*"))
    pgrep = ["pgrep", "-f", str(work / "drill") + "/run-"]
    procs = subprocess.run(pgrep, capture_output=True, text=True).stdout.split()
    return runs + procs


def listeners(pid: int) -> set:
    """(address, port) of the TCP sockets process ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                addr, port = cols[1].split(":")
                ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]) if len(addr) == 8 else addr
                found.add((ip, int(port, 16)))
    return found


# --------------------------------------------------------------------------
# Real drills
# --------------------------------------------------------------------------

@needs("3.5.30")
def test_a_3_member_drill_of_the_3_5_snapshot_passes_every_check_and_leaves_nothing(work):
    seen = {}

    def hook(ctx):
        p = ctx["plan"]
        owner_uid = pwd.getpwnam(OWNER).pw_uid
        for m, proc in zip(p["members"], ctx["procs"]):
            assert listeners(proc.pid) <= {("127.0.0.1", m["client_port"]), ("127.0.0.1", m["peer_port"])}
            assert ("127.0.0.1", m["client_port"]) in listeners(proc.pid)
            uid = [line.split()[1] for line in Path("/proc/%d/status" % proc.pid).read_text().splitlines()
                   if line.startswith("Uid:")][0]
            assert int(uid) == owner_uid
        url = p["members"][0]["client_url"]
        ctl = [str(bin_dir("3.5.30") / "etcdctl"), "--endpoints=" + url, "--dial-timeout=1s", "--command-timeout=2s",
               "--cacert=" + p["pki"]["ca.crt"]]
        # The throwaway CA's client certificate gets in; none, or one of another CA (production's), does not.
        assert subprocess.run(ctl + ["--cert=" + p["pki"]["client.crt"], "--key=" + p["pki"]["client.key"],
                                     "get", "/fixture/small/081"], capture_output=True).returncode == 0
        assert subprocess.run(ctl + ["get", "/fixture/small/081"], capture_output=True).returncode != 0
        crt, key = write_self_signed(work, "production", "other")
        assert subprocess.run(ctl + ["--cert=" + crt, "--key=" + key, "get", "/fixture/small/081"],
                              capture_output=True).returncode != 0
        log = Path(p["members"][0]["log"]).read_text()
        assert "client didn't provide a certificate" in log and "unknown authority" in log
        seen["mode"] = oct(os.stat(p["run_dir"]).st_mode & 0o777)
        seen["key_mode"] = oct(os.stat(p["pki"]["member.key"]).st_mode & 0o777)
        seen["run_dir"] = p["run_dir"]

    began = time.monotonic()
    report = d.drill(params(work, expected_present=PRESENT[:2]), hook=hook)
    took = time.monotonic() - began
    assert report["ok"], report["table"]
    assert report["problems"] == [] and report["snapshot"] == "v3.5.30.db" and report["members"] == 3
    assert {r["revision"] for r in report["readings"].values()} == {157}
    assert {r["keys"] for r in report["readings"].values()} == {126}
    assert len({r["hash"] for r in report["readings"].values()}) == 1
    assert report["rto_seconds"] == pytest.approx(report["restore_seconds"] + report["start_seconds"], abs=0.002)
    assert report["taken"] == "2026-12-03T07:00:00Z" and report["rpo_seconds"] > 0
    assert "RTO" in report["table"] and "drill-3" in report["table"]
    assert seen["mode"] == "0o700" and seen["key_mode"] == "0o600"
    assert not Path(seen["run_dir"]).exists() and leftovers(work) == []
    assert took < 30, "a 3-member drill of a small snapshot took %.1f s" % took
    written = json.loads((work / "drill" / "last-report.json").read_text())
    assert written == {k: v for k, v in report.items() if k != "table"}
    m = metrics(work)
    assert m["etcd_restore_drill_success"] == 1 and m["etcd_restore_drill_failures_total"] == 0
    assert m["etcd_restore_drill_rto_seconds"] == report["rto_seconds"]
    assert m["etcd_restore_drill_rpo_seconds"] == report["rpo_seconds"]
    assert m["etcd_restore_drill_last_success_timestamp_seconds"] == m["etcd_restore_drill_last_run_timestamp_seconds"]
    text = (work / "textfile" / d.METRICS_FILE).read_text()
    assert 'etcd_restore_drill_success{etcd_cluster="prod"} 1' in text
    assert "# TYPE etcd_restore_drill_failures_total counter" in text
    assert oct(os.stat(work / "textfile" / d.METRICS_FILE).st_mode & 0o777) == "0o644"


@needs("3.4.23")
def test_a_3_4_drill_restores_with_etcdctl(work):
    argvs = []

    def run(argv, environ_update=None):
        argvs.append(list(argv))
        return d.run_command(argv, environ_update)

    report = d.drill(params(work, file="v3.4.23.db", expected_present=PRESENT), run=run)
    assert report["ok"], report["table"]
    restores = [a for a in argvs if a[1:3] == ["snapshot", "restore"]]
    assert len(restores) == 3 and all(a[0].endswith("/etcdctl") for a in restores)
    assert all("--bump-revision" not in a for a in restores)
    assert leftovers(work) == []


@needs("3.5.30")
def test_a_wrong_key_count_fails_names_it_tears_down_and_counts_the_failure(work):
    (work / "drill").mkdir()
    (work / "drill" / "state.json").write_text(json.dumps(
        {"failures": 2, "last_success": 1700000000.0, "last_rto": 1.5, "last_rpo": 60.0}))
    args = params(work, expected_keys=125, expected_present=["/no/such/key"])
    # Through the module, as the playbook runs it.
    (work / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run([sys.executable, "-m", "ansible_collections.controlplane.etcd.plugins.modules.etcd_drill",
                           str(work / "args.json")], capture_output=True, text=True, cwd="/")
    result = json.loads(done.stdout)
    assert result["failed"] and result["changed"] and not result["report"]["ok"]
    problems = result["problems"]
    assert "snapshot file: 126 live keys read offline, expected_keys is 125" in problems
    for name in ("drill-1", "drill-2", "drill-3"):
        assert "%s: holds 126 live keys, expected_keys is 125" % name in problems
        assert "%s: key /no/such/key is missing (expected_present)" % name in problems
    assert "expected_keys is 125" in result["msg"] and "FAILED" in result["table"]
    assert leftovers(work) == []
    m = metrics(work)
    assert m["etcd_restore_drill_success"] == 0 and m["etcd_restore_drill_failures_total"] == 3
    assert m["etcd_restore_drill_last_success_timestamp_seconds"] == 1700000000
    assert m["etcd_restore_drill_rto_seconds"] == 1.5 and m["etcd_restore_drill_rpo_seconds"] == 60
    assert json.loads((work / "drill" / "state.json").read_text())["failures"] == 3


def test_check_mode_returns_the_plan_and_does_nothing(work):
    args = dict(params(work), _ansible_check_mode=True)
    (work / "args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    done = subprocess.run([sys.executable, "-m", "ansible_collections.controlplane.etcd.plugins.modules.etcd_drill",
                           str(work / "args.json")], capture_output=True, text=True, cwd="/")
    result = json.loads(done.stdout)
    assert not result.get("failed") and not result["changed"], result
    plan = result["plan"]
    base = args["base_port"]
    assert [(m["client_port"], m["peer_port"]) for m in plan["members"]] == [
        (base + 10, base + 11), (base + 20, base + 21), (base + 30, base + 31)]
    assert plan["token"].startswith("prod-drill-") and plan["cluster"] == "prod-drill"
    assert plan["run_dir"].startswith(str(work / "drill" / "run-")) and plan["tool"] == "etcdutl"
    assert not (work / "drill").exists() and os.listdir(work / "textfile") == []


# --------------------------------------------------------------------------
# Without binaries
# --------------------------------------------------------------------------

def test_the_members_listen_on_loopback_only_with_client_certificates_on_every_listener(work):
    s = d.Settings.from_params(params(work, base_port=23790))
    p = d.plan(s, "20261203T080000Z")
    assert p["token"] == "prod-drill-20261203T080000Z" and p["run_dir"].endswith("/drill/run-20261203T080000Z")
    argv = d.member_argv(s, p, p["members"][1], d.quota_for(1000))
    flag = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("--")}
    assert flag["--listen-client-urls"] == "https://127.0.0.1:23810"
    assert flag["--listen-peer-urls"] == "https://127.0.0.1:23811"
    assert "--client-cert-auth" in argv and "--peer-client-cert-auth" in argv
    assert flag["--trusted-ca-file"] == flag["--peer-trusted-ca-file"] == p["pki"]["ca.crt"]
    assert flag["--initial-cluster-state"] == "new" and flag["--initial-cluster-token"] == p["token"]
    assert "--listen-metrics-urls" not in argv and not any("0.0.0.0" in a for a in argv)
    urls = [a for a in argv if "://" in a] + p["initial_cluster"].split(",")
    assert urls and all("https://127.0.0.1:" in u for u in urls)
    assert flag["--quota-backend-bytes"] == str(2 * 1024 ** 3)


def test_a_failed_restore_still_tears_down_and_removes_only_its_run_folder(work):
    (work / "drill").mkdir()
    (work / "drill" / "run-20200101T000000Z").mkdir()  # another run's folder: never touched

    def run(argv, environ_update=None):
        return 1, "", "Error: open snapshot: boom"

    report = d.drill(params(work), run=run)
    assert not report["ok"]
    assert report["problems"] == ["drill-1: etcdutl snapshot restore failed (rc 1): Error: open snapshot: boom"]
    assert [p.name for p in (work / "drill").glob("run-*")] == ["run-20200101T000000Z"]
    assert metrics(work)["etcd_restore_drill_failures_total"] == 1


def test_a_snapshot_with_another_sha256_is_not_restored(work):
    calls = []
    report = d.drill(params(work, sha256="0" * 64), run=lambda argv, environ_update=None: calls.append(argv))
    assert not report["ok"] and "not the pinned" in report["problems"][0] and calls == []


def test_remove_run_dir_refuses_anything_but_a_run_folder_of_the_work_dir(tmp_path):
    for path in (tmp_path, tmp_path / "data", tmp_path / "x" / "run-1"):
        with pytest.raises(d.DrillError):
            d.remove_run_dir(str(tmp_path), str(path))


@pytest.mark.parametrize("taken, name, expected", [
    ("2026-12-03T07:00:00Z", "x.db", "2026-12-03T07:00:00Z"),
    ("1796281200", "x.db", "2026-12-03T07:00:00Z"),
    (None, "/b/etcd-prod-20261203T070000Z-r4211.db", "2026-12-03T07:00:00Z"),
    (None, "x.db", None),
])
def test_when_the_snapshot_was_taken(taken, name, expected):
    assert d.iso(d.parse_taken(taken, name)) == expected


def test_readings_disagreeing_on_hashkv_or_revision_are_named():
    good = {"revision": 10, "keys": 5, "hash": 1, "missing": [], "errors": []}
    problems = d.check_readings(10, 5, {"drill-1": good, "drill-2": dict(good, revision=9, hash=2),
                                        "drill-3": dict(good, keys=None, hash=None, errors=["key count: timeout"])})
    assert problems == ["drill-2: revision is 9, the snapshot's is 10", "drill-3: key count: timeout",
                        "members disagree on endpoint hashkv: drill-1=1, drill-2=2, drill-3=None"]


def test_the_state_keeps_the_last_success_through_failures():
    state = {"failures": 0, "last_success": 0.0, "last_rto": 0.0, "last_rpo": 0.0}
    state = d.next_state(state, {"ok": True, "rto_seconds": 2.5, "rpo_seconds": 30.0}, 100.0)
    state = d.next_state(state, {"ok": False, "rto_seconds": 9.0, "rpo_seconds": 1.0}, 200.0)
    assert state == {"failures": 1, "last_success": 100.0, "last_rto": 2.5, "last_rpo": 30.0}
    text = d.render_metrics('a"b', state, False, 200.0)
    assert 'etcd_restore_drill_success{etcd_cluster="a\\"b"} 0' in text
    assert 'etcd_restore_drill_rto_seconds{etcd_cluster="a\\"b"} 2.500' in text
    assert text.count("# HELP") == text.count("# TYPE") == 7
    assert 'etcd_restore_drill_max_age_seconds{etcd_cluster="a\\"b"} 604800' in text
    assert 'etcd_restore_drill_max_age_seconds{etcd_cluster="x"} 86400' in d.render_metrics("x", state, True, 1.0, 86400)


# --------------------------------------------------------------------------
# Scheduled drills (etcd_drill.scheduled, roles/etcd_drill/files/etcd-drill): the snapshot from rclone
# --------------------------------------------------------------------------

SCRIPT = REPO / "roles" / "etcd_drill" / "files" / "etcd-drill"
REMOTE = "remote:etcd-backups/prod"
# Named as etcd_backup.NAME_RE names them: etcd-<cluster>-<UTC time>-r<revision>.db
NEWEST = "etcd-prod-20261203T070000Z-r157.db"


def fake_rclone(root: Path, calls: list, fail: str = ""):
    """A runner playing rclone on ``root`` (``remote:<path>`` is ``root/<path>``); etcd's tools run for real.

    ``fail``: a copyto of a source ending so fails."""
    def local(path: str) -> Path:
        return root / path.split(":", 1)[1]

    def run(argv, environ_update=None):
        if os.path.basename(argv[0]) != "rclone":
            return d.run_command(argv, environ_update)
        assert argv[-len(d.RCLONE_FLAGS):] == d.RCLONE_FLAGS  # time limits on every call
        argv = argv[:-len(d.RCLONE_FLAGS)]
        calls.append(list(argv))
        if argv[1:3] != ["--config", str(root / "rclone.conf")]:
            return 1, "", "ERROR : wrong config %s" % argv[1:3]
        verb = argv[3:]
        if verb[:2] == ["lsf", "--files-only"]:
            folder = local(verb[2])
            if not folder.is_dir():
                return 3, "", "2026/12/03 07:00:00 ERROR : : error listing: directory not found\n"
            return 0, "".join(p.name + "\n" for p in sorted(folder.iterdir()) if p.is_file()), ""
        if verb[0] == "copyto" and not (fail and verb[1].endswith(fail)):
            shutil.copyfile(local(verb[1]), verb[2])
            return 0, "", ""
        return 1, "", "2026/12/03 07:00:00 ERROR : %s: failed to copy: 403 Forbidden\n" % verb[1]
    return run


def put(root: Path, name: str, fixture: str = "v3.5.30.db", sha256=None, cluster_path: str = "etcd-backups/prod"):
    """A snapshot on the fake remote; its .sha256 as the backup job writes it (None: the fixture's, "": none)."""
    folder = root / cluster_path
    folder.mkdir(parents=True, exist_ok=True)
    data = (FIXTURES / fixture).read_bytes()
    (folder / name).write_bytes(data)
    if sha256 != "":
        (folder / (name + ".sha256")).write_text("%s  %s\n" % (sha256 or hashlib.sha256(data).hexdigest(), name))


def sched_config(work: Path, **extra) -> dict:
    out = dict(cluster="prod", remote=REMOTE, rclone_config=str(work / "remote" / "rclone.conf"), version="3.5.30",
               bin_dir=str(bin_dir("3.5.30")), members=3, base_port=free_base(), work_dir=str(work / "drill"),
               expected_present=PRESENT[:2], timeout=60, owner=OWNER, textfile_dir=str(work / "textfile"))
    out.update(extra)
    return out


def incoming(work: Path) -> list:
    folder = work / "drill" / "incoming"
    return sorted(os.listdir(folder)) if folder.exists() else []


@needs("3.5.30")
def test_a_scheduled_drill_fetches_the_newest_verified_snapshot_drills_it_and_deletes_the_copies(work):
    root, calls = work / "remote", []
    put(root, "etcd-prod-20261201T070000Z-r157.db", fixture="v3.4.23.db")  # older
    put(root, NEWEST)
    put(root, "etcd-prod-20261203T080000Z-r160.db", fixture="empty-v3.5.30.db", sha256="")  # newer, unverified
    put(root, "etcd-other-20261203T090000Z-r157.db")  # another cluster's
    put(root, "etcd-prod-20261203T100000Z-r170.db", cluster_path="etcd-backups/prod/old")  # not in this folder
    report = d.scheduled(sched_config(work), run=fake_rclone(root, calls))
    assert report["ok"], report["table"]
    assert report["snapshot"] == NEWEST and report["problems"] == []
    assert report["sha256"] == hashlib.sha256((FIXTURES / "v3.5.30.db").read_bytes()).hexdigest()
    assert report["revision"] == 157 and report["keys"] == 126 and report["taken"] == "2026-12-03T07:00:00Z"
    assert {r["revision"] for r in report["readings"].values()} == {157}
    assert {r["keys"] for r in report["readings"].values()} == {126}
    copied = [c[4] for c in calls if c[3] == "copyto"]
    assert copied == ["%s/%s" % (REMOTE, NEWEST), "%s/%s.sha256" % (REMOTE, NEWEST)]
    assert calls[0][3:] == ["lsf", "--files-only", REMOTE]
    assert incoming(work) == [] and leftovers(work) == []
    assert oct(os.stat(work / "drill" / "incoming").st_mode & 0o777) == "0o700"
    assert json.loads((work / "drill" / "last-report.json").read_text()) == {
        k: v for k, v in report.items() if k != "table"}
    m = metrics(work)
    assert m["etcd_restore_drill_success"] == 1 and m["etcd_restore_drill_failures_total"] == 0


def test_a_remote_that_cannot_be_listed_is_a_failed_drill_that_keeps_the_last_success(work):
    (work / "drill").mkdir()
    (work / "drill" / "state.json").write_text(json.dumps(
        {"failures": 0, "last_success": 1700000000.0, "last_rto": 1.5, "last_rpo": 60.0}))
    calls = []
    report = d.scheduled(sched_config(work), run=fake_rclone(work / "remote", calls), now=1796288400.0)
    assert not report["ok"]
    assert report["problems"] == ["cannot list %s: rclone lsf failed (rc 3): 2026/12/03 07:00:00 ERROR : : "
                                  "error listing: directory not found" % REMOTE]
    assert report["snapshot"] == "" and report["sha256"] == "" and report["revision"] == report["keys"] == 0
    assert report["finished"] == "2026-12-03T09:00:00Z" and report["readings"] == {}
    assert "FAILED" in report["table"] and REMOTE in report["table"]
    assert [c[3] for c in calls] == ["lsf"] and incoming(work) == []
    assert json.loads((work / "drill" / "last-report.json").read_text())["problems"] == report["problems"]
    state = json.loads((work / "drill" / "state.json").read_text())
    assert state["failures"] == 1 and state["last_success"] == 1700000000.0
    m = metrics(work)
    assert m["etcd_restore_drill_success"] == 0 and m["etcd_restore_drill_failures_total"] == 1
    assert m["etcd_restore_drill_last_success_timestamp_seconds"] == 1700000000
    assert m["etcd_restore_drill_last_run_timestamp_seconds"] == 1796288400


def test_a_remote_without_a_verified_snapshot_of_the_cluster_is_a_failed_drill(work):
    root = work / "remote"
    put(root, NEWEST, sha256="")  # not verified
    put(root, "etcd-other-20261203T090000Z-r157.db")  # another cluster's
    (root / "etcd-backups" / "prod" / "notes.txt").write_text("not a snapshot\n")
    (root / "etcd-backups" / "prod" / "notes.txt.sha256").write_text("0" * 64 + "  notes.txt\n")
    report = d.scheduled(sched_config(work), run=fake_rclone(root, []))
    assert not report["ok"]
    assert report["problems"] == ["%s holds no verified snapshot of prod (a .db with its .sha256)" % REMOTE]
    assert incoming(work) == [] and metrics(work)["etcd_restore_drill_failures_total"] == 1


@pytest.mark.parametrize("recorded, problem", [
    ("0" * 64, "snapshot %s: SHA-256 is %s, not the pinned %s"),
    ("not-a-checksum", "%s/%s.sha256 does not hold a SHA-256"),
])
def test_a_sha256_that_does_not_match_the_copy_fails_before_any_restore(work, recorded, problem):
    root, calls = work / "remote", []
    put(root, NEWEST, sha256=recorded)
    report = d.scheduled(sched_config(work), run=fake_rclone(root, calls))
    assert not report["ok"] and len(report["problems"]) == 1
    if recorded == "0" * 64:
        whole = hashlib.sha256((FIXTURES / "v3.5.30.db").read_bytes()).hexdigest()
        # drill() itself refused it: it names the copy it was given.
        copy = work / "drill" / "incoming" / NEWEST
        assert report["problems"][0] == problem % (copy, whole, recorded)
        assert report["sha256"] == recorded and report["revision"] == 157 and report["keys"] == 126
    else:
        assert report["problems"][0].startswith(problem % (REMOTE, NEWEST))
        assert report["sha256"] == "" and report["revision"] == 0
    assert report["snapshot"] == NEWEST and report["taken"] == "2026-12-03T07:00:00Z"
    assert all(os.path.basename(c[0]) == "rclone" for c in calls)  # nothing restored
    assert incoming(work) == [] and list((work / "drill").glob("run-*")) == []
    assert metrics(work)["etcd_restore_drill_failures_total"] == 1


def test_a_failed_copy_names_the_file_and_deletes_what_was_copied(work):
    root = work / "remote"
    put(root, NEWEST)
    report = d.scheduled(sched_config(work), run=fake_rclone(root, [], fail=".sha256"))
    source = "%s/%s.sha256" % (REMOTE, NEWEST)
    assert report["problems"] == ["cannot copy %s: rclone copyto failed (rc 1): 2026/12/03 07:00:00 ERROR : %s: "
                                  "failed to copy: 403 Forbidden" % (source, source)]
    assert report["snapshot"] == NEWEST and incoming(work) == []


def test_without_rclone_the_scheduled_drill_fails_and_says_so(work):
    report = d.scheduled(sched_config(work, rclone=str(work / "no-rclone")))
    assert not report["ok"] and "rc 127" in report["problems"][0] and "no-rclone" in report["problems"][0]


def run_script(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    return subprocess.run([sys.executable, str(SCRIPT)] + list(args), capture_output=True, text=True, env=env,
                          cwd="/", **kw)


def test_the_script_exits_78_on_a_missing_or_bad_config(work):
    done = run_script("--config", str(work / "missing.json"))
    assert done.returncode == 78 and "bad config" in done.stderr and "missing.json" in done.stderr
    (work / "config.json").write_text(json.dumps({"cluster": "prod", "remote": REMOTE}))
    done = run_script("--config", str(work / "config.json"))
    assert done.returncode == 78 and "lacks rclone_config, version" in done.stderr


def test_the_script_reports_a_failed_drill_with_exit_1_and_waits_for_no_other_run(work):
    import fcntl

    (work / "config.json").write_text(json.dumps(sched_config(work, rclone="false")))
    done = run_script("--config", str(work / "config.json"), "--json")
    assert done.returncode == 1, done.stderr
    assert "FAILED" in done.stderr and "cannot list %s: rclone lsf failed (rc 1)" % REMOTE in done.stderr
    report = json.loads(done.stdout)
    assert not report["ok"] and "table" not in report
    assert metrics(work)["etcd_restore_drill_failures_total"] == 1
    with open(work / "drill" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run_script("--config", str(work / "config.json"))
    assert done.returncode == 75 and "holds" in done.stderr
    assert metrics(work)["etcd_restore_drill_failures_total"] == 1
