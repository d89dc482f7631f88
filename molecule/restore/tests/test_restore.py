"""playbooks/restore.yml on a real three-member cluster with authentication on.

In file order: known data and a verified snapshot of it, then writes and deletes after it;
the plan in check mode and the refusals (nothing changes on any member); a restore whose
controller is killed half-way, finished by a re-run; then exactly the snapshot's data on
every member, the old data kept aside, and a re-run that has nothing to do.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from conftest import MEMBERS, etcdctl, keys

from harness import playbook_command, run_site, snapshot, ssh

ALL = {"r1": {}, "r2": {}, "r3": {}}
KNOWN = 120


def flat(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def restore(tmp_path, snapshot_path, *extra: str) -> subprocess.CompletedProcess:
    return run_site(tmp_path, ALL, "-e", "etcd_restore_snapshot=%s" % snapshot_path, *extra, playbook="restore")


def untouched_state():
    """Everything provisioning manages and the running process, plus each member's data folder."""
    state = snapshot()
    for name in MEMBERS:
        state[name] += ssh(name, "sudo ls -la --time-style=full-iso /var/lib/etcd /var/lib/etcd/member", check=False).stdout
    return state


@pytest.fixture(scope="module")
def backup(tmp_path_factory):
    """Known data, a verified snapshot of it on the controller, then changes the restore must undo."""
    folder = tmp_path_factory.mktemp("snapshots")
    etcdctl("r1", "del /shop/ --prefix")
    ssh("r1", "sudo bash -lc 'for i in $(seq -w 1 %d); do etcdctl put /shop/known/$i value-$i >/dev/null; done'" % KNOWN)
    taken = run_site(folder / "run", ALL, "-e", "etcd_backup_fetch_dir=%s" % folder, playbook="backup")
    assert taken.returncode == 0, flat(taken)[-3000:]
    (path,) = folder.glob("etcd-restore-*.db")
    # After the snapshot: new keys, and a mistake the restore undoes.
    ssh("r1", "sudo bash -lc 'for i in $(seq 1 20); do etcdctl put /shop/after/$i x >/dev/null; done; "
              "etcdctl del /shop/known/00 --prefix'")
    assert len(keys("r1", "/shop/known/")) == KNOWN - 9
    return {"path": path, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "folder": folder}


def test_check_mode_prints_the_plan_and_changes_nothing(backup, tmp_path):
    before = untouched_state()
    planned = restore(tmp_path, backup["path"], "--check")
    out = flat(planned)
    assert planned.returncode == 0, out[-3000:]
    assert backup["sha256"] in out and "%d keys" % KNOWN in out, out[-3000:]
    for name in MEMBERS:
        assert "%s: stop etcd; move /var/lib/etcd" % name in out
    assert "-e etcd_restore_confirm=%s" % backup["sha256"][:12] in out
    assert untouched_state() == before


def _corrupt(folder, source):
    target = folder / source.name
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    shutil.copy(str(source) + ".sha256", str(target) + ".sha256")
    return target


def _unverified(folder, source):
    target = folder / source.name
    shutil.copy(source, target)
    return target


def _other_cluster(folder, source):
    target = folder / source.name.replace("etcd-restore-", "etcd-other-")
    shutil.copy(source, target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (folder / (target.name + ".sha256")).write_text("%s  %s\n" % (digest, target.name))
    return target


def _unnamed(folder, source):
    return ""


@pytest.mark.parametrize("make, confirm, words", [
    (_unnamed, None, "etcd_restore_snapshot is not set"),
    (None, None, "etcd_restore_confirm is not set"),
    (None, "0123456789ab", "names another snapshot"),
    (_corrupt, "from-file", "the file changed after the backup job verified it"),
    (_unverified, "from-file", "has no .sha256 beside it"),
    (_other_cluster, "from-file", "is a snapshot of another cluster"),
], ids=["no-snapshot", "no-confirmation", "wrong-confirmation", "corrupt", "no-sha256", "other-cluster"])
def test_a_bad_snapshot_or_missing_confirmation_is_refused_and_nothing_changes(backup, tmp_path, make, confirm, words):
    path = backup["path"]
    if make:
        folder = tmp_path / "bad"
        folder.mkdir()
        path = make(folder, path)
    extra = []
    if confirm == "from-file" and path:
        extra = ["-e", "etcd_restore_confirm=%s" % hashlib.sha256(path.read_bytes()).hexdigest()]
    elif confirm:
        extra = ["-e", "etcd_restore_confirm=%s" % confirm]
    before = untouched_state()
    refused = restore(tmp_path, path, *extra)
    out = flat(refused)
    assert refused.returncode != 0 and words in out, out[-3000:]
    assert "Refused before" in out or not path
    assert untouched_state() == before
    assert len(keys("r2", "/shop/after/")) == 20


def test_a_restore_killed_half_way_is_finished_by_running_it_again(backup, tmp_path):
    argv, env = playbook_command(tmp_path, ALL, "-e", "etcd_restore_snapshot=%s" % backup["path"],
                                 "-e", "etcd_restore_confirm=%s" % backup["sha256"], playbook="restore")
    run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    seen = []
    restoring = False
    for line in run.stdout:
        seen.append(line)
        restoring = restoring or "Move the old data aside and restore the snapshot" in line
        # Killed as the first member reports its restore done: the others may still be restoring,
        # and the hold is not yet released (a fixed sleep raced a small snapshot's quick restore).
        if restoring and re.match(r"(changed|ok|fatal): \[r\d\]", line):
            os.killpg(run.pid, signal.SIGKILL)
            break
    run.wait(60)
    assert any("Move the old data aside" in line for line in seen), "".join(seen)[-3000:]
    time.sleep(3)
    for name in MEMBERS:
        # Held down, and the old data is either still in place or kept aside: never gone.
        assert ssh(name, "systemctl is-active etcd", check=False).stdout.strip() != "active"
        listing = ssh(name, "sudo ls /var/lib/etcd").stdout.split()
        assert "member" in listing or any(n.startswith("member.before-restore-") for n in listing), listing
    finished = restore(tmp_path, backup["path"], "-e", "etcd_restore_confirm=%s" % backup["sha256"])
    out = flat(finished)
    assert finished.returncode == 0, out[-4000:]
    assert "move aside and restore" in out and "check revision, hashkv, keys" in out
    assert re.search(r"Restored etcd-restore-\S+ \(SHA-256 %s" % backup["sha256"][:12], out)


def test_every_member_serves_exactly_the_snapshot(backup):
    expected = {"/shop/known/%03d" % i: "value-%03d" % i for i in range(1, KNOWN + 1)}
    for name in MEMBERS:
        assert keys(name, "/shop/known/") == expected, name
        assert keys(name, "/shop/after/") == {}, name
    statuses = json.loads(etcdctl("r1", "endpoint status --cluster -w json").stdout)
    revisions = {s["Status"]["header"]["revision"] for s in statuses}
    assert len(statuses) == 3 and len(revisions) == 1 and min(revisions) > 1_000_000_000, statuses
    hashes = {h["HashKV"]["hash"] for h in json.loads(etcdctl("r1", "endpoint hashkv --cluster -w json").stdout)}
    assert len(hashes) == 1
    # A new cluster: the token changed, so no member of the old one could have joined.
    assert all("before-restore" not in n for n in ssh("r1", "sudo cat /etc/etcd/etcd.conf.yml").stdout.split())


def test_the_first_start_override_is_gone_and_the_managed_configuration_unchanged():
    for name in MEMBERS:
        left = ssh(name, "sudo ls /etc/systemd/system/etcd.service.d /etc/etcd").stdout.split()
        assert "restore-first-start.conf" not in left and "etcd.conf.restore-first-start.yml" not in left, left
        assert "experimental-initial-corrupt-check: true" in ssh(name, "sudo cat /etc/etcd/etcd.conf.yml").stdout


def test_the_old_data_is_kept_aside_with_a_date(backup):
    for name in MEMBERS:
        # One per restore (a killed run and its re-run share one); the newest is this test's.
        aside = sorted(ssh(name, "sudo sh -c 'ls -d /var/lib/etcd/member.before-restore-*'").stdout.split())
        assert aside and all(re.search(r"before-restore-\d{8}T\d{6}Z$", a) for a in aside), aside
        assert ssh(name, "sudo test -s %s/snap/db" % aside[-1], check=False).returncode == 0


def test_users_and_roles_come_back_with_the_data():
    assert "true" in etcdctl("r1", "auth status").stdout.lower()
    assert "shop" in etcdctl("r1", "user list").stdout.split()
    role = etcdctl("r1", "role get app-shop").stdout
    assert "/shop/" in role


def test_a_second_run_has_nothing_to_do_and_still_needs_the_confirmation(backup, tmp_path):
    again = restore(tmp_path, backup["path"], "-e", "etcd_restore_confirm=%s" % backup["sha256"])
    out = flat(again)
    assert again.returncode == 0 and "nothing to do" in out, out[-3000:]
    assert re.search(r"changed=0\s", again.stdout)
    before = untouched_state()
    refused = restore(tmp_path, backup["path"])
    assert refused.returncode != 0 and "etcd_restore_confirm is not set" in flat(refused)
    assert untouched_state() == before


def test_the_status_playbook_works_on_the_restored_cluster(tmp_path):
    status = run_site(tmp_path, ALL, playbook="status")
    assert status.returncode == 0, flat(status)[-3000:]
