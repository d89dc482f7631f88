"""Full-cluster restore rules: the snapshot, the tool and flags per version, the plan."""
from __future__ import annotations

import hashlib

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_restore as r

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
    assert done["steps"][1].startswith("h2: stop etcd; move /var/lib/etcd and /wal aside")
    old = r.plan(["h1"], members, {"sha256": SHA}, "3.4.23", r.DEFAULT_BUMP)
    assert old["bump_revision"] == 0 and "cannot bump the revision" in old["warnings"][0]
