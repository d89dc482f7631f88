"""playbooks/upgrade.yml on a real three-member cluster under a writer's load.

In file order: the refusals on 3.4.23 (nothing changes anywhere), 3.4.23 -> 3.5.30 with a
member killed half-way (the play stops, the cluster keeps serving, a re-run finishes), then
3.5.16 -> 3.5.30 with authentication on. Every acknowledged write must be there at the end.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path

from conftest import MEMBERS, Writer, cluster_version, running_versions

from harness import PROJECT, playbook_command, run_site, snapshot, ssh

ALL = {"u1": {}, "u2": {}, "u3": {}}


def upgrade(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return run_site(tmp_path, ALL, *extra, playbook="upgrade")


def flat(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def issue_writer_certificate(tmp_path) -> None:
    issued = run_site(tmp_path, ALL, "-e", "etcd_client_name=writer", "-e", "etcd_client_host=u1",
                      playbook="client_cert")
    assert issued.returncode == 0, flat(issued)[-3000:]


def assert_refused_and_untouched(tmp_path, words, *extra: str) -> None:
    before = snapshot()
    refused = upgrade(tmp_path, *extra)
    output = flat(refused)
    assert refused.returncode != 0, output[-3000:]
    for word in words:
        assert word in output, output[-3000:]
    assert not re.search(r"changed=[1-9]", refused.stdout), refused.stdout[-3000:]
    assert snapshot() == before


def test_starts_on_3_4_with_authentication_off():
    assert set(running_versions().values()) == {"3.4.23"}
    assert cluster_version() == "3.4.0"


def test_a_skipped_minor_version_is_refused(tmp_path):
    assert_refused_and_untouched(tmp_path, ["3.4.23 -> 3.6.0 skips a minor version", "newest 3.5 release first"],
                                 "-e", "etcd_version=3.6.0")


def test_a_downgrade_is_refused(tmp_path):
    assert_refused_and_untouched(tmp_path, ["3.4.23 -> 3.4.22 is a downgrade", "restore the snapshot"],
                                 "-e", "etcd_version=3.4.22")


def test_3_4_to_3_5_with_authentication_on_is_refused(tmp_path):
    turned_on = run_site(tmp_path, ALL, "--tags", "rbac", "-e", "etcd_rbac_enabled=true")
    assert turned_on.returncode == 0, flat(turned_on)[-3000:]
    try:
        assert_refused_and_untouched(
            tmp_path, ["3.4 -> 3.5 with authentication on is not supported upstream", "etcd_rbac_enabled: false"],
            "-e", "etcd_version=3.5.30")
    finally:
        turned_off = run_site(tmp_path, ALL, "--tags", "rbac", "-e", "etcd_rbac_enabled=false")
        assert turned_off.returncode == 0, flat(turned_off)[-3000:]


def test_check_mode_prints_the_plan_and_changes_nothing(tmp_path):
    before = snapshot()
    planned = upgrade(tmp_path, "-e", "etcd_version=3.5.30", "--check")
    output = flat(planned)
    assert planned.returncode == 0, output[-3000:]
    assert re.search(r"Upgrade to etcd 3\.5\.30 \(from 3\.4\.23, cluster version 3\.4\.0\): order u\d -> u\d -> u\d", output)
    assert "quorum 2 of 3 voters, margin 1" in output and "snapshot first" in output
    assert snapshot() == before


# A systemd drop-in that refuses to start etcd from the 3.5.30 folder.
REFUSE_3_5_30 = "[Service]\nExecStartPre=/bin/sh -c '! readlink /usr/local/bin/etcd | grep -q v3.5.30'\n"


def _member_state(name: str) -> str:
    """What a member runs and is configured with: any touch shows here."""
    return ssh(name, "readlink /usr/local/bin/etcd; sudo sha256sum /etc/etcd/etcd.conf.yml; "
                     "systemctl show -p MainPID --value etcd").stdout


def test_a_member_that_fails_on_the_new_release_goes_back_and_the_play_stops(tmp_path):
    # A unit that will not start etcd from the 3.5.30 folder: a failure no check can foresee.
    dropin = "/etc/systemd/system/etcd.service.d/refuse-3.5.30.conf"
    for name in MEMBERS:
        ssh(name, "sudo mkdir -p %s && echo %s | base64 -d | sudo tee %s >/dev/null"
            % (os.path.dirname(dropin), base64.b64encode(REFUSE_3_5_30.encode()).decode(), dropin))
    before = {name: _member_state(name) for name in MEMBERS}
    try:
        failed = upgrade(tmp_path, "-e", "etcd_version=3.5.30")
    finally:
        for name in MEMBERS:
            ssh(name, "sudo sh -c 'rm %s && systemctl daemon-reload'" % dropin)
    output = flat(failed)
    assert failed.returncode != 0, output[-3000:]
    first = re.search(r"Restart etcd on (u\d)\]", output).group(1)
    assert "%s (%s) did not pass its checks within 30 s" % (first, first) in output, output[-3000:]
    assert "It is back on its previous release and files" in output and "and the cluster is healthy" in output
    assert "/opt/etcd/v3.4.23/etcd" in ssh(first, "readlink /usr/local/bin/etcd").stdout
    assert running_versions() == {name: "3.4.23" for name in MEMBERS}
    # Only the first member took a turn; the others run and are configured exactly as before.
    assert len(re.findall(r"Restart etcd on u\d\]", output)) == 1
    for name in MEMBERS:
        if name != first:
            assert _member_state(name) == before[name], name


def test_a_member_killed_half_way_stops_the_play_and_a_re_run_finishes(tmp_path):
    issue_writer_certificate(tmp_path)
    writer = Writer(tmp_path, "/writer/3.4-to-3.5/").start()
    argv, env = playbook_command(tmp_path, ALL, "-e", "etcd_version=3.5.30", playbook="upgrade")
    before = {name: _member_state(name) for name in MEMBERS}
    play = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=str(PROJECT))
    lines, victim = [], None
    for line in play.stdout:
        lines.append(line)
        # The first member is being waited for: kill the member whose turn comes next.
        started = re.search(r"TASK \[.*Wait until healthy, caught up and on the wanted release: (u\d)\]", line)
        if started and victim is None:
            order = re.search(r"order (u\d) -> (u\d) -> (u\d)", " ".join(" ".join(lines).split()))
            first, victim = started.group(1), order.group(2)
            assert first == order.group(1)
            ssh(victim, "sudo sh -c 'systemctl kill -s KILL etcd; systemctl stop etcd'")
    play.wait(timeout=600)
    output = " ".join("".join(lines).split())
    try:
        assert victim, output[-3000:]
        assert play.returncode != 0, output[-3000:]
        assert "Stopped before touching %s: the cluster is not healthy" % victim in output, output[-3000:]
        versions = running_versions()
        assert versions[first] == "3.5.30" and versions[victim] == ""
        # The two others still hold quorum and take writes; the leader was never touched.
        assert [v for n, v in versions.items() if n not in (first, victim)] == ["3.4.23"]
        acked = writer.acked()
        time.sleep(4)
        assert writer.acked() > acked
    finally:
        ssh(victim or "u1", "sudo systemctl start etcd")
    # The play never touched the victim: same release, same files, back on 3.4.23.
    assert _member_state(victim).splitlines()[:2] == before[victim].splitlines()[:2]
    assert running_versions()[victim] == "3.4.23"
    try:
        finished = upgrade(tmp_path, "-e", "etcd_version=3.5.30")
    finally:
        report = writer.stop()
    assert finished.returncode == 0, flat(finished)[-3000:]
    out = flat(finished)
    assert "already on the target: %s;" % first in out
    assert set(running_versions().values()) == {"3.5.30"}
    assert cluster_version() == "3.5.0"
    checked = writer.verify()
    assert checked["missing_count"] == 0 and checked["present"] == len(report["acked"]) > 500, checked


def test_a_re_run_changes_nothing(tmp_path):
    again = upgrade(tmp_path, "-e", "etcd_version=3.5.30")
    assert again.returncode == 0, flat(again)[-3000:]
    assert "Nothing to upgrade: every member already runs etcd 3.5.30" in flat(again)
    assert not re.search(r"changed=[1-9]", again.stdout), again.stdout[-3000:]


def test_after_the_upgrade_a_downgrade_is_refused(tmp_path):
    assert_refused_and_untouched(tmp_path, ["3.5.30 -> 3.5.16 is a downgrade"], "-e", "etcd_version=3.5.16")


def test_3_5_16_to_3_5_30_with_authentication_on_loses_no_write(tmp_path):
    # A new cluster on 3.5.16: the 3.5.30 data is moved aside (dated), never deleted.
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name in MEMBERS:
        ssh(name, "sudo sh -c 'systemctl stop etcd && mv /var/lib/etcd /var/lib/etcd.before-%s "
                  "&& rm -f /usr/local/bin/etcd /usr/local/bin/etcdctl /usr/local/bin/etcdutl'" % stamp)
    provisioned = run_site(tmp_path, ALL, "-e", "etcd_version=3.5.16", "-e", "etcd_rbac_enabled=true")
    assert provisioned.returncode == 0, flat(provisioned)[-3000:]
    assert set(running_versions().values()) == {"3.5.16"}
    issue_writer_certificate(tmp_path)
    writer = Writer(tmp_path, "/writer/3.5.16-to-3.5.30/").start()
    try:
        upgraded = upgrade(tmp_path, "-e", "etcd_version=3.5.30", "-e", "etcd_rbac_enabled=true")
    finally:
        report = writer.stop()
    output = flat(upgraded)
    assert upgraded.returncode == 0, output[-3000:]
    taken = re.search(r"Pre-upgrade snapshot: (\S+/etcd-upgrade-\S+\.db) \(sha256 ([0-9a-f]{64})", output)
    assert taken, output[-3000:]
    assert output.index("Pre-upgrade snapshot:") < output.index("Restart etcd on")
    assert hashlib.sha256(Path(taken.group(1)).read_bytes()).hexdigest() == taken.group(2)
    assert set(running_versions().values()) == {"3.5.30"}
    # The table: one row per member, and the former leader handed over before its turn.
    rows = re.findall(r"(u\d) u\d 3\.5\.16 3\.5\.30 +[\d.]+ +(-|[\d.]+) +[\d.]+", output)
    assert sorted(r[0] for r in rows) == ["u1", "u2", "u3"] and [r[1] != "-" for r in rows] == [False, False, True], rows
    checked = writer.verify()
    assert checked["missing_count"] == 0 and checked["present"] == len(report["acked"]) > 100, checked
    # Authentication stayed on: the writer cannot read outside its prefix.
    denied = ssh("u1", "sudo etcdctl --endpoints=https://172.31.243.11:2379 --cacert=/etc/etcd-client/writer/ca.crt "
                       "--cert=/etc/etcd-client/writer/writer.crt --key=/etc/etcd-client/writer/writer.key get /x",
                 check=False)
    assert "permission denied" in denied.stderr, denied
