"""Data on dedicated volumes: formatted once, mounted noatime through fstab, survives a host
restart, moved onto for a running member one at a time, and never at the cost of someone's data.

The tests run in file order: v3 is moved onto its volume before the restart test.
"""
from __future__ import annotations

import re
import subprocess
import time

import pytest

from harness import cluster_healthy, run_site, snapshot, ssh

ALL = {"v1": {}, "v2": {}, "v3": {}}
WITH_V3_VOLUME = {"v1": {}, "v2": {}, "v3": {"etcd_data_device": "/dev/nvme1n1"}}


def mount_of(member: str) -> str:
    return ssh(member, "findmnt -rno SOURCE,FSTYPE,OPTIONS,LABEL /var/lib/etcd", check=False).stdout.strip()


@pytest.mark.parametrize("member", ["v1", "v2"])
def test_fresh_members_run_on_their_volume(member):
    source, fstype, options, *_ = mount_of(member).split()
    assert source == "/dev/nvme1n1" and fstype == "ext4"
    assert "noatime" in options.split(",")
    assert ssh(member, "sudo blkid -s LABEL -o value /dev/nvme1n1").stdout.strip() == "etcd-data"
    # The member's data lives on the volume, and fstab mounts it by UUID at boot.
    assert ssh(member, "sudo findmnt -rno TARGET -T /var/lib/etcd/member").stdout.strip() == "/var/lib/etcd"
    fstab = ssh(member, "cat /etc/fstab").stdout
    assert re.search(r"^UUID=\S+\s+/var/lib/etcd\s+ext4\s+noatime\s", fstab, re.M)
    unit = ssh(member, "cat /etc/systemd/system/etcd.service").stdout
    assert "RequiresMountsFor=/var/lib/etcd" in unit


def test_v3_starts_on_its_root_filesystem():
    assert mount_of("v3") == ""


def test_a_running_member_is_moved_onto_its_volume_without_losing_data(tmp_path):
    ssh("v1", "sudo -i etcdctl put /volumes/before-move kept")
    result = run_site(tmp_path, WITH_V3_VOLUME)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Stop etcd on the member being moved" in output
    assert mount_of("v3").startswith("/dev/nvme1n1 ext4 ")
    # The old copy is kept beside the mount under a dated name, never deleted.
    aside = ssh("v3", "sudo ls -d /var/lib/etcd.pre-volume-*").stdout.split()
    assert len(aside) == 1 and re.match(r"/var/lib/etcd\.pre-volume-\d{8}T\d{6}Z$", aside[0])
    assert ssh("v3", "sudo test -d %s/member && echo yes" % aside[0]).stdout.strip() == "yes"
    assert cluster_healthy("v1")
    value = ssh("v3", "sudo -i env -u ETCDCTL_ENDPOINTS etcdctl --endpoints=https://127.0.0.1:2379 "
                      "get /volumes/before-move --print-value-only").stdout.strip()
    assert value == "kept"
    # Converged: a second run with the same inventory changes nothing.
    again = run_site(tmp_path / "again", WITH_V3_VOLUME)
    assert again.returncode == 0 and not re.search(r"changed=[1-9]", again.stdout), again.stdout[-3000:]
    # Every member's data now has its own volume, so backups on the root disk draw no warning.
    assert "is on the same filesystem as the etcd data" not in " ".join(again.stdout.split())


def test_volume_is_still_mounted_and_etcd_healthy_after_a_host_restart():
    subprocess.run(["docker", "restart", "v2"], check=True, capture_output=True, timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ssh("v2", "systemctl is-active etcd", check=False).stdout.strip() == "active":
            break
        time.sleep(2)
    assert mount_of("v2").startswith("/dev/nvme1n1 ext4 ")
    deadline = time.monotonic() + 60
    while not cluster_healthy("v1") and time.monotonic() < deadline:
        time.sleep(2)
    assert cluster_healthy("v1")


def test_etcd_refuses_to_start_while_its_volume_is_missing():
    ssh("v1", "sudo systemctl stop etcd && sudo umount /var/lib/etcd")
    try:
        started = ssh("v1", "sudo systemctl start etcd", check=False)
        assert started.returncode != 0
        assert ssh("v1", "systemctl is-active etcd", check=False).stdout.strip() != "active"
        # Nothing was written to the root filesystem underneath the mount point.
        assert ssh("v1", "sudo ls -A /var/lib/etcd").stdout.strip() == ""
    finally:
        ssh("v1", "sudo mount /var/lib/etcd && sudo systemctl start etcd")
    deadline = time.monotonic() + 60
    while not cluster_healthy("v2") and time.monotonic() < deadline:
        time.sleep(2)
    assert cluster_healthy("v2")


def _device_digest() -> str:
    return ssh("v1", "sudo sha256sum /dev/nvme2n1").stdout.split()[0]


def test_a_disk_that_holds_data_is_refused_and_left_byte_for_byte(tmp_path):
    before_disk, before = _device_digest(), snapshot()
    hosts = dict(WITH_V3_VOLUME, v1={"etcd_data_device": "/dev/nvme2n1"})
    result = run_site(tmp_path, hosts)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "/dev/nvme2n1 holds a ext4 filesystem labelled backups" in output, output[-3000:]
    assert "etcd_volume_force_device: /dev/nvme2n1" in output
    assert not re.search(r"changed=[1-9]", output)
    assert _device_digest() == before_disk
    assert snapshot() == before


def test_force_for_another_device_does_not_unlock_this_one(tmp_path):
    before_disk = _device_digest()
    hosts = dict(WITH_V3_VOLUME, v1={"etcd_data_device": "/dev/nvme2n1", "etcd_volume_force_device": "/dev/sdz"})
    result = run_site(tmp_path, hosts)
    assert result.returncode != 0 and "left untouched" in result.stdout + result.stderr
    assert _device_digest() == before_disk


def test_even_inventory_refused_before_any_host_changes(tmp_path):
    before = snapshot()
    result = run_site(tmp_path, {"v1": {}, "v2": {}})
    assert result.returncode != 0 and "2 members is an even count" in result.stdout + result.stderr
    assert snapshot() == before


def test_data_and_wal_named_as_one_device_behind_two_links_is_refused(tmp_path):
    ssh("v1", "sudo ln -sfn /dev/nvme1n1 /dev/etcd-wal-alias")
    try:
        before = snapshot()
        hosts = dict(WITH_V3_VOLUME, v1={"etcd_wal_device": "/dev/etcd-wal-alias"})
        result = run_site(tmp_path, hosts)
        flat = " ".join((result.stdout + result.stderr).split())
        assert result.returncode != 0
        assert ("host 'v1' names the same device for data and WAL (/dev/nvme1n1 and /dev/etcd-wal-alias, "
                "after resolving links)") in flat, flat[-3000:]
        assert not re.search(r"changed=[1-9]", result.stdout)
        assert snapshot() == before
    finally:
        ssh("v1", "sudo rm -f /dev/etcd-wal-alias", check=False)
