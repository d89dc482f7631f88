"""Volume safety: format only blank disks, mount our own, refuse anything that may hold data."""
from __future__ import annotations

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_volume import mountpoints_of, parse_blkid_export, verdict

DEV = "/dev/nvme1n1"


def facts(**extra):
    base = {"path": DEV, "exists": True, "is_block": True, "signature": {}, "partitions": [],
            "holders": [], "mountpoints": [], "expected_mount": "/var/lib/etcd"}
    base.update(extra)
    return base


def test_blank_disk_is_formatted():
    assert verdict(facts(), "etcd-data")["action"] == "format"


def test_our_own_volume_is_mounted_not_formatted():
    ours = facts(signature={"TYPE": "ext4", "LABEL": "etcd-data"})
    assert verdict(ours, "etcd-data")["action"] == "mount"
    mounted_where_it_belongs = facts(signature={"TYPE": "ext4", "LABEL": "etcd-data"},
                                     mountpoints=["/var/lib/etcd"])
    assert verdict(mounted_where_it_belongs, "etcd-data")["action"] == "mount"


@pytest.mark.parametrize("extra,words", [
    ({"signature": {"TYPE": "ext4", "LABEL": "backups"}}, "holds a ext4 filesystem labelled backups"),
    ({"signature": {"TYPE": "xfs"}}, "holds a xfs filesystem"),
    ({"signature": {"PTTYPE": "gpt"}}, "carries a gpt partition table"),
    ({"partitions": ["loop5p1"]}, "has partitions loop5p1"),
    ({"signature": {"TYPE": "LVM2_member"}}, "an LVM physical volume"),
    ({"signature": {"TYPE": "linux_raid_member"}}, "a RAID member"),
    ({"holders": ["dm-0"]}, "is in use by dm-0"),
    ({"mountpoints": ["/srv"]}, "is mounted at /srv"),
])
def test_anything_that_may_hold_data_is_refused_with_the_fix(extra, words):
    result = verdict(facts(**extra), "etcd-data")
    assert result["action"] == "refuse"
    assert words in result["reason"]
    assert "etcd_volume_force_device: %s" % DEV in result["reason"]


def test_force_must_name_the_exact_device():
    old = facts(signature={"TYPE": "ext4", "LABEL": "scratch"})
    assert verdict(old, "etcd-data", force_device="/dev/nvme2n1")["action"] == "refuse"
    assert verdict(old, "etcd-data", force_device=DEV)["action"] == "format"


def test_force_never_applies_to_a_mounted_disk_or_root():
    mounted = facts(signature={"TYPE": "ext4"}, mountpoints=["/srv"])
    assert verdict(mounted, "etcd-data", force_device=DEV)["action"] == "refuse"
    root = facts(signature={"TYPE": "ext4"}, mountpoints=["/"])
    result = verdict(root, "etcd-data", force_device=DEV)
    assert result["action"] == "refuse" and "root filesystem" in result["reason"]


def test_missing_or_non_block_paths_are_refused():
    assert "does not exist" in verdict(facts(exists=False), "etcd-data")["reason"]
    assert "not a block device" in verdict(facts(is_block=False), "etcd-data")["reason"]


def test_blkid_export_parsing():
    out = "DEVNAME=/dev/loop5\nUUID=1234\nBLOCK_SIZE=4096\nTYPE=ext4\nLABEL=etcd-data\n"
    assert parse_blkid_export(out) == {"DEVNAME": "/dev/loop5", "UUID": "1234", "BLOCK_SIZE": "4096",
                                       "TYPE": "ext4", "LABEL": "etcd-data"}
    assert parse_blkid_export("") == {}


def test_mountinfo_matches_by_device_number():
    mountinfo = (
        "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "80 22 7:5 / /var/lib/etcd rw,noatime - ext4 /dev/nvme1n1 rw\n"
        "81 22 7:6 / /mnt/my\\040disk rw - ext4 /dev/loop6 rw\n"
    )
    assert mountpoints_of(mountinfo, ["7:5"]) == ["/var/lib/etcd"]
    assert mountpoints_of(mountinfo, ["7:6"]) == ["/mnt/my disk"]
    assert mountpoints_of(mountinfo, ["254:0"]) == ["/"]
