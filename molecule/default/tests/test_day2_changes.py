"""Changes on the running cluster: quorum-safe rolling restarts and certificate renewal."""
from __future__ import annotations

import json
import re

import harness
from harness import leader_name, run_site
from test_refusals import ALL

from conftest import MEMBERS


def ssh(member: str, command: str) -> str:
    return harness.ssh(member, command).stdout


def _restarted(output: str) -> list:
    return re.findall(r"TASK \[controlplane\.etcd\.etcd_member : Restart etcd on (m\d)\]", output)


def _main_pids() -> dict:
    return {m: ssh(m, "systemctl show -p MainPID --value etcd").strip() for m in MEMBERS}


def test_setting_change_restarts_one_member_at_a_time_leader_last(tmp_path):
    leader = leader_name()
    changed = run_site(tmp_path / "a", ALL, "-e", "etcd_log_level=debug")
    output = changed.stdout + changed.stderr
    assert changed.returncode == 0, output[-3000:]
    restarted = _restarted(output)
    assert sorted(restarted) == ["m1", "m2", "m3"], output[-3000:]
    # No data volumes here: backups and data share the root filesystem, and the run says so.
    assert "etcd_backup_dir /var/backups/etcd is on the same filesystem as the etcd data" in " ".join(output.split())
    assert restarted[-1] == leader, "leader %s should restart last, order was %s" % (leader, restarted)
    # Each restart is followed by a health gate before the next member is touched.
    gates = re.findall(r"TASK \[controlplane\.etcd\.etcd_member : Wait until healthy, caught up and on the "
                       r"wanted release: (m\d)\]", output)
    assert gates == restarted
    for member in MEMBERS:
        assert "log-level: debug" in ssh(member, "sudo cat /etc/etcd/etcd.conf.yml")

    # A change on some members restarts those members only: m2 keeps debug in its host_vars.
    pids = _main_pids()
    partial = run_site(tmp_path / "b", {"m1": {}, "m2": {"etcd_log_level": "debug"}, "m3": {}})
    assert partial.returncode == 0, (partial.stdout + partial.stderr)[-3000:]
    assert sorted(_restarted(partial.stdout)) == ["m1", "m3"]
    assert _main_pids()["m2"] == pids["m2"], "m2's settings did not change, so it must not restart"

    # Back to the converged settings: only m2 changes now, only m2 restarts.
    pids = _main_pids()
    reverted = run_site(tmp_path / "c", ALL)
    assert reverted.returncode == 0, (reverted.stdout + reverted.stderr)[-3000:]
    assert _restarted(reverted.stdout) == ["m2"]
    after = _main_pids()
    assert after["m1"] == pids["m1"] and after["m3"] == pids["m3"] and after["m2"] != pids["m2"]
    for member in MEMBERS:
        assert "log-level: info" in ssh(member, "sudo cat /etc/etcd/etcd.conf.yml")
    health = json.loads(ssh("m1", "sudo -i etcdctl endpoint health --cluster -w json"))
    assert len(health) == 3 and all(h["health"] for h in health)


def test_certificates_inside_the_renewal_window_are_signed_again(tmp_path):
    serial = "sudo openssl x509 -noout -serial -in /etc/etcd/pki/%s.crt 2>/dev/null || " \
             "sudo python3 -c \"import sys; from cryptography import x509; " \
             "print(x509.load_pem_x509_certificate(open('/etc/etcd/pki/%s.crt','rb').read()).serial_number)\""
    before = {m: [ssh(m, serial % (c, c)) for c in ("server", "peer", "admin")] for m in MEMBERS}
    # A window longer than the certificates' lifetime puts every certificate inside it.
    renewed = run_site(tmp_path / "a", ALL, "--tags", "pki", "-e", "etcd_pki_renew_days=400")
    assert renewed.returncode == 0, (renewed.stdout + renewed.stderr)[-3000:]
    after = {m: [ssh(m, serial % (c, c)) for c in ("server", "peer", "admin")] for m in MEMBERS}
    for member in MEMBERS:
        assert all(b != a for b, a in zip(before[member], after[member])), member
    # The normal window leaves the fresh certificates alone, and clients still connect.
    again = run_site(tmp_path / "b", ALL, "--tags", "pki")
    assert again.returncode == 0 and not re.search(r"changed=[1-9]", again.stdout)
    health = json.loads(ssh("m2", "sudo -i etcdctl endpoint health --cluster -w json"))
    assert len(health) == 3 and all(h["health"] for h in health)


def test_a_setting_etcd_refuses_at_start_puts_the_first_member_back_and_stops(tmp_path):
    """A value no validation can know about: etcd itself refuses it when it reads its file."""
    leader = leader_name()
    configs = {m: ssh(m, "sudo sha256sum /etc/etcd/etcd.conf.yml") for m in MEMBERS}
    pids = _main_pids()
    bad = run_site(tmp_path, ALL, "-e", "etcd_health_timeout=30", "-e",
                   '{"etcd_config_extra": {"experimental-watch-progress-notify-interval": "not-a-duration"}}')
    output = bad.stdout + bad.stderr
    flat = " ".join(output.split())
    assert bad.returncode != 0, output[-3000:]
    restarted = _restarted(output)
    assert len(restarted) == 1 and restarted[0] != leader, restarted
    first = restarted[0]
    assert "%s (%s) did not pass its checks within 30 s" % (first, first) in flat, flat[-3000:]
    assert "It is back on its previous release and files" in flat and "the cluster is healthy" in flat
    assert "cannot unmarshal string into Go struct field" in flat  # etcd's own message, from the journal
    for member in MEMBERS:
        assert ssh(member, "sudo sha256sum /etc/etcd/etcd.conf.yml") == configs[member], member
    after = _main_pids()
    assert all(after[m] == pids[m] for m in MEMBERS if m != first), "only %s may have restarted" % first
    health = json.loads(ssh("m1", "sudo -i etcdctl endpoint health --cluster -w json"))
    assert len(health) == 3 and all(h["health"] for h in health)
