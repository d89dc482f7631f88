"""Full-cluster restore rules: the snapshot, the tool and flags per version, the plan."""
from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_restore as r
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_restore import (
    RestoreError, mark_verified, read_state, restore_member)

SHA = hashlib.sha256(b"snapshot").hexdigest()
NAME = "etcd-prod-20261203T070000Z-r4211.db"
MEMBER = {"name": "m1", "data_dir": "/var/lib/etcd", "wal_dir": "", "peer_url": "https://10.0.0.1:2380"}


@pytest.mark.parametrize("version, binary, bump", [
    ("3.4.23", "etcdctl", False), ("3.4.27", "etcdctl", True),
    ("3.5.9", "etcdutl", False), ("3.5.10", "etcdutl", True), ("3.5.30", "etcdutl", True), ("3.6.0", "etcdutl", True),
])
def test_restore_tool_and_revision_bump_by_version(version, binary, bump):
    assert r.restore_tool(version) == {"binary": binary, "bump": bump}


def test_restore_command_has_the_membership_the_new_token_and_the_bump():
    argv = r.restore_argv("3.5.30", "/usr/local/bin", "/tmp/s.db", MEMBER, "m1=https://10.0.0.1:2380", "tok", 1000)
    assert argv[:4] == ["/usr/local/bin/etcdutl", "snapshot", "restore", "/tmp/s.db"]
    assert argv[argv.index("--initial-cluster-token") + 1] == "tok"
    assert argv[argv.index("--bump-revision") + 1] == "1000" and "--mark-compacted" in argv
    assert "--wal-dir" not in argv


def test_restore_command_leaves_out_what_the_version_lacks_and_keeps_the_wal_folder():
    argv = r.restore_argv("3.4.23", "/usr/local/bin", "/tmp/s.db", dict(MEMBER, wal_dir="/var/lib/etcd-wal/wal"),
                          "m1=https://10.0.0.1:2380", "tok", 1000)
    assert argv[0] == "/usr/local/bin/etcdctl" and "--bump-revision" not in argv and "--mark-compacted" not in argv
    assert argv[argv.index("--wal-dir") + 1] == "/var/lib/etcd-wal/wal"


def test_no_bump_when_set_to_zero():
    assert "--bump-revision" not in r.restore_argv("3.5.30", "/b", "/s.db", MEMBER, "ic", "tok", 0)


def test_the_token_is_new_per_snapshot_and_stable_for_a_re_run():
    other = hashlib.sha256(b"other").hexdigest()
    assert r.restore_token("prod", SHA) == r.restore_token("prod", SHA)
    assert r.restore_token("prod", SHA) != r.restore_token("prod", other)
    assert r.restore_token("prod", SHA) != "prod"  # never the provisioned token


def test_a_verified_snapshot_of_this_cluster_passes():
    assert r.snapshot_problems(NAME, "%s  %s\n" % (SHA, NAME), SHA, "prod", {"totalKey": 12}) == []


@pytest.mark.parametrize("name, sha_file, sha, status, words", [
    ("etcd-staging-20261203T070000Z-r4211.db", "%s  x" % SHA, SHA, None, "snapshot of another cluster"),
    ("backup.db", "%s  x" % SHA, SHA, None, "not named as the backup job names snapshots"),
    (NAME, None, SHA, None, "has no .sha256 beside it"),
    (NAME, "%s  x" % ("0" * 64), SHA, None, "the file changed after the backup job verified it"),
    (NAME, "garbage", SHA, None, "does not hold a SHA-256"),
    (NAME, "%s  x" % SHA, SHA, {"totalKey": 0}, "holds no keys"),
])
def test_bad_snapshots_are_refused_with_the_reason(name, sha_file, sha, status, words):
    problems = r.snapshot_problems(name, sha_file, sha, "prod", status)
    assert len(problems) == 1 and words in problems[0], problems


def test_every_copy_must_carry_the_pinned_hash():
    assert r.copies_problems(SHA, {"m1": SHA, "m2": SHA}) == []
    problems = r.copies_problems(SHA, {"m1": SHA, "m2": "", "m3": "ab"})
    assert [p.split()[3] for p in problems] == ["m2", "m3"] and "(missing)" in problems[0]


def test_old_data_goes_aside_beside_itself_with_a_date():
    assert r.aside_path("/var/lib/etcd/", "20261203T080000Z") == "/var/lib/etcd.before-restore-20261203T080000Z"


def test_the_plan_names_each_member_and_warns_where_the_revision_cannot_be_bumped():
    members = {"h1": MEMBER, "h2": dict(MEMBER, name="m2", wal_dir="/wal")}
    done = r.plan(["h1", "h2"], members, {"sha256": SHA}, "3.5.30", r.DEFAULT_BUMP)
    assert done["tool"] == "etcdutl" and done["bump_revision"] == r.DEFAULT_BUMP and done["warnings"] == []
    assert done["steps"][1].startswith("h2: stop etcd; move /var/lib/etcd/member and /wal aside")
    old = r.plan(["h1"], members, {"sha256": SHA}, "3.4.23", r.DEFAULT_BUMP)
    assert old["bump_revision"] == 0 and "cannot bump the revision" in old["warnings"][0]


# ---- one member's transaction, on real folders with a stand-in for etcdutl ----

SHA_M = "ab" * 32


def _fake_restore(calls, fail=False):
    """Writes what etcdutl writes: <data>/member/{snap,wal} or, with --wal-dir, the WAL there."""
    def command(data_dir, wal_dir):
        return ["restore", data_dir, wal_dir]

    def run(argv):
        calls.append(argv)
        if fail:
            return 1, "", "Error: expected sha256 [1 2 3], got [4 5 6]\n"
        _, data_dir, wal_dir = argv
        os.makedirs(os.path.join(data_dir, "member", "snap"))
        with open(os.path.join(data_dir, "member", "snap", "db"), "w") as f:
            f.write("restored")
        os.makedirs(wal_dir or os.path.join(data_dir, "member", "wal"))
        return 0, "", ""
    return command, run


def _old_member(data_dir, wal_dir=""):
    os.makedirs(os.path.join(data_dir, "member", "snap"))
    with open(os.path.join(data_dir, "member", "snap", "db"), "w") as f:
        f.write("old")
    if wal_dir:
        os.makedirs(wal_dir)
        with open(os.path.join(wal_dir, "0.wal"), "w") as f:
            f.write("old wal")


@pytest.mark.parametrize("separate_wal", [False, True])
def test_a_member_is_moved_aside_and_restored_and_a_second_run_changes_nothing(tmp_path, separate_wal):
    data, state = str(tmp_path / "data"), str(tmp_path / "state")
    wal = str(tmp_path / "walvol" / "wal") if separate_wal else ""
    _old_member(data, wal)
    calls, owned = [], []
    command, run = _fake_restore(calls)
    result = restore_member(state, SHA_M, "20260101T000000Z", data, wal, command, run, owned.append)
    assert result["changed"] and result["phase"] == "restored"
    with open(os.path.join(data, "member", "snap", "db")) as f:
        assert f.read() == "restored"
    with open(os.path.join(data, "member.before-restore-20260101T000000Z", "snap", "db")) as f:
        assert f.read() == "old"
    if separate_wal:
        assert os.listdir(wal) == []
        assert os.listdir(wal + ".before-restore-20260101T000000Z") == ["0.wal"]
    assert sorted(os.listdir(data)) == ["member", "member.before-restore-20260101T000000Z"]  # no scratch left
    assert len(calls) == 1 and owned
    again = restore_member(state, SHA_M, "20260202T000000Z", data, wal, command, run, owned.append)
    assert not again["changed"] and again["stamp"] == "20260101T000000Z" and len(calls) == 1


def test_a_run_killed_after_the_move_finishes_on_the_next_run_without_touching_the_old_data(tmp_path):
    data, state = str(tmp_path / "data"), str(tmp_path / "state")
    _old_member(data)
    calls = []
    command, run = _fake_restore(calls)

    def killed(argv):  # the controller died while the restore wrote half its output
        os.makedirs(os.path.join(argv[1], "member", "snap"))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_member(state, SHA_M, "20260101T000000Z", data, "", command, killed, lambda p: None)
    assert not os.path.exists(os.path.join(data, "member"))
    result = restore_member(state, SHA_M, "20260303T000000Z", data, "", command, run, lambda p: None)
    assert result["phase"] == "restored" and len(calls) == 1
    with open(os.path.join(data, "member.before-restore-20260101T000000Z", "snap", "db")) as f:
        assert f.read() == "old"
    with open(os.path.join(data, "member", "snap", "db")) as f:
        assert f.read() == "restored"


def test_a_folder_that_appears_where_data_was_is_never_overwritten(tmp_path):
    data, state = str(tmp_path / "data"), str(tmp_path / "state")
    _old_member(data)
    os.makedirs(os.path.join(data, "member.before-restore-20260101T000000Z"))  # something already there
    command, run = _fake_restore([])
    with pytest.raises(RestoreError, match="both .* exist"):
        restore_member(state, SHA_M, "20260101T000000Z", data, "", command, run, lambda p: None)
    with open(os.path.join(data, "member", "snap", "db")) as f:
        assert f.read() == "old"


def test_a_failed_restore_names_the_tool_s_error_and_keeps_the_old_data_aside(tmp_path):
    data, state = str(tmp_path / "data"), str(tmp_path / "state")
    _old_member(data)
    command, run = _fake_restore([], fail=True)
    with pytest.raises(RestoreError, match="expected sha256"):
        restore_member(state, SHA_M, "20260101T000000Z", data, "", command, run, lambda p: None)
    assert os.path.isdir(os.path.join(data, "member.before-restore-20260101T000000Z"))


def test_check_mode_changes_nothing_and_verified_needs_a_finished_restore(tmp_path):
    data, state = str(tmp_path / "data"), str(tmp_path / "state")
    _old_member(data)
    command, run = _fake_restore([])
    result = restore_member(state, SHA_M, "20260101T000000Z", data, "", command, run, lambda p: None, check_mode=True)
    assert result["changed"] and result["actions"] and not os.path.exists(state)
    assert os.listdir(data) == ["member"]
    with pytest.raises(RestoreError, match="not finished"):
        mark_verified(state, SHA_M)
    restore_member(state, SHA_M, "20260101T000000Z", data, "", command, run, lambda p: None)
    assert mark_verified(state, SHA_M) and not mark_verified(state, SHA_M)
    assert read_state(state, SHA_M)["phase"] == "verified"


def test_the_operator_names_the_snapshot_on_every_run():
    assert r.confirm_problems(SHA[:12], SHA) == [] and r.confirm_problems(SHA.upper(), SHA) == []
    (missing,) = r.confirm_problems("", SHA)
    assert "etcd_restore_confirm is not set" in missing and "etcd_restore_confirm=%s" % SHA[:12] in missing
    assert "names another snapshot" in r.confirm_problems("f" * 12, SHA)[0]
    assert r.confirm_problems(SHA[:8], SHA)  # too short to name one snapshot


def test_latest_verified_is_the_newest_of_this_cluster_with_its_checksum():
    names = ["etcd-prod-20261201T000000Z-r10.db", "etcd-prod-20261201T000000Z-r10.db.sha256",
             "etcd-prod-20261203T000000Z-r30.db",  # newest, but never verified
             "etcd-prod-20261202T000000Z-r20.db", "etcd-prod-20261202T000000Z-r20.db.sha256",
             "etcd-other-20261204T000000Z-r40.db", "etcd-other-20261204T000000Z-r40.db.sha256"]
    assert r.latest_verified(names, "prod") == "etcd-prod-20261202T000000Z-r20.db"
    assert r.latest_verified(names[2:3], "prod") is None


def test_every_member_must_hold_the_restored_revision_keys_and_one_hash():
    good = {"m1": {"revision": 1000000055, "keys": 49, "hash": 7}, "m2": {"revision": 1000000060, "keys": 49, "hash": 7}}
    assert r.verify_problems(1000000055, 49, good) == []
    bad = dict(good, m3={}, m2={"revision": 55, "keys": 48, "hash": 8})
    problems = " ".join(r.verify_problems(1000000055, 49, bad))
    assert "m3 did not answer" in problems and "m2 is at revision 55" in problems
    assert "m2 holds 48 keys" in problems and "disagree on hashkv" in problems


CONFIG_35 = "# Ansible managed\nname: m1\nexperimental-initial-corrupt-check: true\nexperimental-compact-hash-check-enabled: true\n"
CONFIG_36 = "name: m1\nfeature-gates: InitialCorruptCheck=true,CompactHashCheck=true\n"


@pytest.mark.parametrize("text, off, kept", [
    (CONFIG_35, "experimental-initial-corrupt-check: false", "experimental-compact-hash-check-enabled: true"),
    (CONFIG_36, "feature-gates: InitialCorruptCheck=false,CompactHashCheck=true", "name: m1"),
])
def test_the_first_start_after_a_restore_skips_only_the_initial_corruption_check(text, off, kept):
    out = r.first_start_config(text).splitlines()
    assert off in out and kept in out
    assert [line for line in out if not line.startswith("#")] == [
        off if "InitialCorrupt" in line or "initial-corrupt" in line else line
        for line in text.splitlines() if not line.startswith("#")]


def test_the_first_start_override_is_written_once_and_removed_after_verification(tmp_path):
    etc, dropins = tmp_path / "etc", tmp_path / "etcd.service.d"
    etc.mkdir()
    config = etc / "etcd.conf.yml"
    config.write_text(CONFIG_35)
    config.chmod(0o640)
    assert r.write_first_start(str(config), str(dropins), "/usr/local/bin/etcd")
    copy, dropin = etc / r.FIRST_START_CONFIG, dropins / r.FIRST_START_DROPIN
    assert "experimental-initial-corrupt-check: false" in copy.read_text()
    assert oct(copy.stat().st_mode & 0o777) == "0o640"
    assert dropin.read_text().splitlines()[-2:] == [
        "ExecStart=", "ExecStart=/usr/local/bin/etcd --config-file %s" % copy]
    assert not r.write_first_start(str(config), str(dropins), "/usr/local/bin/etcd")  # a re-run
    assert config.read_text() == CONFIG_35  # the managed file is never touched
    assert r.remove_first_start(str(config), str(dropins))
    assert not copy.exists() and not dropin.exists() and config.exists()
    assert not r.remove_first_start(str(config), str(dropins))


def test_no_override_without_a_configuration(tmp_path):
    assert not r.write_first_start(str(tmp_path / "missing.yml"), str(tmp_path / "d"), "/usr/local/bin/etcd")
    assert not (tmp_path / "d").exists()


def test_the_hold_keeps_etcd_down_until_released(tmp_path):
    state, dropins = tmp_path / "state", tmp_path / "etcd.service.d"
    assert r.write_hold(str(state), SHA, str(dropins)) == {"hold": True, "guard": True}
    assert (state / r.HOLD_FILE).read_text() == SHA + "\n"
    assert oct((state / r.HOLD_FILE).stat().st_mode & 0o777) == "0o600"
    assert "ConditionPathExists=!%s" % (state / r.HOLD_FILE) in (dropins / r.GUARD_DROPIN).read_text().splitlines()
    # A re-run (a killed restore) changes nothing; another restore rewrites the hold only.
    assert r.write_hold(str(state), SHA, str(dropins)) == {"hold": False, "guard": False}
    other = hashlib.sha256(b"other").hexdigest()
    assert r.write_hold(str(state), other, str(dropins)) == {"hold": True, "guard": False}


def _snapshot_bytes(body: bytes = b"b" * 480) -> bytes:
    """A file shaped like `snapshot save` output: body (size % 512 == 0 after trailer removal) + sha256(body)."""
    return body + hashlib.sha256(body).digest()


def test_place_copy_probe_reports_absent_then_present_without_changing_anything(tmp_path):
    data = _snapshot_bytes(b"x" * 512)
    dest = tmp_path / NAME
    assert r.place_copy(None, str(dest), hashlib.sha256(data).hexdigest()) == {
        "present": False, "sha256": None, "trailer_ok": None, "changed": False}
    dest.write_bytes(data)
    got = r.place_copy(None, str(dest), hashlib.sha256(data).hexdigest())
    assert got["present"] and got["trailer_ok"] and not got["changed"]
    assert not (tmp_path / (NAME + ".sha256")).exists()


def test_place_copy_moves_a_matching_upload_into_place_private_with_its_sha256(tmp_path):
    data = _snapshot_bytes(b"y" * 512)
    sha = hashlib.sha256(data).hexdigest()
    staged = tmp_path / "upload"
    staged.write_bytes(data)
    dest = tmp_path / "state" / NAME
    dest.parent.mkdir()
    got = r.place_copy(str(staged), str(dest), sha)
    assert got == {"present": True, "sha256": sha, "trailer_ok": True, "changed": True}
    assert dest.read_bytes() == data and oct(dest.stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "state" / (NAME + ".sha256")).read_text() == "%s  %s\n" % (sha, NAME)
    assert not staged.exists() and not (tmp_path / "state" / (NAME + ".partial")).exists()


def test_place_copy_refuses_a_damaged_upload_and_leaves_the_old_copy_alone(tmp_path):
    data = _snapshot_bytes(b"z" * 512)
    staged = tmp_path / "upload"
    staged.write_bytes(data[:-1] + b"\0")
    dest = tmp_path / NAME
    dest.write_bytes(b"an older copy")
    with pytest.raises(ValueError, match="transfer was damaged"):
        r.place_copy(str(staged), str(dest), hashlib.sha256(data).hexdigest())
    assert dest.read_bytes() == b"an older copy" and not (tmp_path / (NAME + ".partial")).exists()
