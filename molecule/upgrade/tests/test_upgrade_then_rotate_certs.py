"""playbooks/rotate-certs.yml on this scenario's cluster once the maintenance tests are done
with it (pytest runs this file after them): 3.5.30, authentication on, a 24 MiB quota, the
writer's certificate issued before the rotation.

In file order: refusals (no rotation time, a time in the future) and check mode change nothing;
the rotation under the writer's load: every member's certificates are signed again, etcd is not
restarted and serves the new one, no write fails, and the writer's certificate from before still
connects; a re-run signs nothing; then the writer's own certificate is rotated, and the old one
still connects (same CA) until it expires.
"""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import time

from conftest import MEMBERS, Writer

from harness import run_site, snapshot, ssh

ALL = {"u1": {}, "u2": {}, "u3": {}}
# The cluster as the maintenance tests left it: a different quota would restart every member.
CLUSTER = ["-e", "etcd_version=3.5.30", "-e", "etcd_rbac_enabled=true", "-e", "etcd_quota_backend_bytes=%d" % (24 * 2**20)]
SERIALS = "for c in server peer admin; do openssl x509 -noout -serial -in /etc/etcd/pki/$c.crt; done"


def rotate(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return run_site(tmp_path, ALL, *CLUSTER, *extra, playbook="rotate_certs")


def flat(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def utc(offset_seconds: int = 0) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def serials() -> dict:
    return {name: ssh(name, "sudo sh -c '%s'" % SERIALS).stdout.split() for name in MEMBERS}


def started() -> dict:
    return {name: ssh(name, "systemctl show -p MainPID -p ActiveEnterTimestamp etcd").stdout for name in MEMBERS}


def served_serial(member: str) -> str:
    return ssh(member, "sudo bash -c 'openssl s_client -connect $(hostname -I | cut -d\" \" -f1):2379 "
                       "-CAfile /etc/etcd/pki/ca.crt -cert /etc/etcd/pki/admin.crt -key /etc/etcd/pki/admin.key "
                       "</dev/null 2>/dev/null | openssl x509 -noout -serial'").stdout.strip()


def test_a_rotation_without_its_time_or_with_a_future_one_is_refused_and_nothing_changes(tmp_path):
    before = snapshot()
    missing = rotate(tmp_path / "missing")
    assert missing.returncode != 0 and "give the rotation's start in UTC" in flat(missing), flat(missing)[-3000:]
    future = rotate(tmp_path / "future", "-e", "etcd_pki_reissue_before=%s" % utc(3600))
    assert future.returncode != 0 and "is in the future" in flat(future), flat(future)[-3000:]
    for result in (missing, future):
        assert not re.search(r"changed=[1-9]", result.stdout), result.stdout[-3000:]
    assert snapshot() == before


def test_check_mode_shows_what_would_be_signed_and_changes_nothing(tmp_path):
    before, serials_before = snapshot(), serials()
    time.sleep(1.1)  # certificates carry whole seconds
    planned = rotate(tmp_path, "--check", "--diff", "-e", "etcd_pki_reissue_before=%s" % utc())
    out = flat(planned)
    assert planned.returncode == 0, out[-3000:]
    assert len(re.findall(r"sign server\.crt: it was issued \S+, before etcd_pki_reissue_before", out)) == 3, out[-3000:]
    assert serials() == serials_before and snapshot() == before


def writer_in(folder, prefix: str = "/writer/rotation/") -> Writer:
    """A writer with the certificate u1 holds now, kept in its own folder."""
    folder.mkdir(parents=True, exist_ok=True)
    return Writer(folder, prefix)


def test_the_rotation_under_load_restarts_nothing_and_loses_no_write(tmp_path):
    old_writer = writer_in(tmp_path / "old")  # the writer's certificate, from before the rotation
    serials_before, started_before = serials(), started()
    time.sleep(1.1)  # certificates carry whole seconds
    start = utc()
    writer = old_writer.start()
    try:
        rotated = rotate(tmp_path / "rotate", "-e", "etcd_pki_reissue_before=%s" % start)
    finally:
        report = writer.stop()
    out = flat(rotated)
    assert rotated.returncode == 0, out[-3000:]
    after = serials()
    for name in MEMBERS:
        assert all(a != b for a, b in zip(after[name], serials_before[name])), (name, after, serials_before)
        # etcd reads its certificate per connection: the new one is served without a restart.
        assert served_serial(name) == after[name][0], name
    assert started() == started_before
    assert report["failed_attempts"] == 0 and len(report["acked"]) > 50, {k: report[k] for k in ("failed_attempts",)}
    checked = old_writer.verify()  # the writer's certificate from before still connects
    assert checked["missing_count"] == 0 and checked["present"] == len(report["acked"]), checked

    again = rotate(tmp_path / "again", "-e", "etcd_pki_reissue_before=%s" % start)
    assert again.returncode == 0, flat(again)[-3000:]
    assert not re.search(r"changed=[1-9]", again.stdout), again.stdout[-3000:]
    assert serials() == after


def test_an_application_certificate_is_rotated_and_the_old_one_still_connects(tmp_path):
    old = writer_in(tmp_path / "old")
    old.start()
    report = old.stop()
    time.sleep(1.1)
    issued = run_site(tmp_path, ALL, "-e", "etcd_client_name=writer", "-e", "etcd_client_host=u1",
                      "-e", "etcd_pki_reissue_before=%s" % utc(), playbook="client_cert")
    assert issued.returncode == 0, flat(issued)[-3000:]
    new = writer_in(tmp_path / "new")
    assert (tmp_path / "new" / "writer.crt").read_text() != (tmp_path / "old" / "writer.crt").read_text()
    new.result = old.result
    for writer in (new, old):  # the new certificate works, and the old one still connects
        checked = writer.verify()
        assert checked["missing_count"] == 0 and checked["present"] == len(report["acked"]) > 50, checked
