# -*- coding: utf-8 -*-
"""Decide whether a block device may become an etcd volume.

The rule is simple and strict: a device is formatted only when it is blank,
or when the operator names that exact device in the force variable. A device
that already carries our own labelled filesystem is simply mounted. Anything
else (a filesystem, a partition table, LVM or RAID membership, a mount, the
root filesystem) is refused, so no operator data is ever overwritten.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional

# blkid TYPE values that mean the device belongs to a volume manager or array.
_MEMBER_TYPES = {"LVM2_member": "an LVM physical volume", "linux_raid_member": "a RAID member",
                 "zfs_member": "a ZFS pool member", "crypto_LUKS": "a LUKS container",
                 "swap": "swap space", "bcache": "a bcache device"}


def parse_blkid_export(text: str) -> Dict[str, str]:
    """`blkid -p -o export DEV` prints KEY=value lines; rc 2 (nothing found) gives ''."""
    found: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper():
            found[key] = value
    return found


def mountpoints_of(mountinfo: str, dev_ids: List[str]) -> List[str]:
    """Mount points whose source is one of the MAJOR:MINOR ids (from /proc/self/mountinfo)."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[2] in dev_ids:
            points.append(fields[4].replace("\\040", " "))
    return points


def sysfs_block_dir(rdev_major: int, rdev_minor: int, sysfs: str = "/sys") -> Optional[str]:
    """The sysfs folder of a device by number; works for renamed nodes in containers too."""
    link = os.path.join(sysfs, "dev", "block", "%d:%d" % (rdev_major, rdev_minor))
    return os.path.realpath(link) if os.path.exists(link) else None


def verdict(facts: Mapping[str, Any], label: str, force_device: str = "") -> Dict[str, str]:
    """Return {'action': 'format'|'mount'|'refuse', 'reason': ...} for one device.

    facts: path, exists, is_block, signature (dict from blkid), partitions (list),
    holders (list), mountpoints (list), expected_mount (str).
    """
    path = str(facts.get("path"))
    if not facts.get("exists"):
        return _refuse("%s does not exist: check the device name (prefer a stable /dev/disk/by-id/ path)" % path)
    if not facts.get("is_block"):
        return _refuse("%s is not a block device: etcd_data_device must name a whole disk" % path)
    mounts = [m for m in facts.get("mountpoints") or [] if m != facts.get("expected_mount")]
    if "/" in mounts:
        return _refuse("%s holds the root filesystem: pick an empty, dedicated disk" % path)
    signature = dict(facts.get("signature") or {})
    ours = signature.get("TYPE") in ("ext4", "xfs") and signature.get("LABEL") == label
    if ours and not mounts:
        return {"action": "mount", "reason": "%s already carries this toolkit's %s filesystem labelled %s"
                % (path, signature["TYPE"], label)}
    problems = []
    if mounts:
        problems.append("is mounted at %s" % ", ".join(mounts))
    if facts.get("holders"):
        problems.append("is in use by %s" % ", ".join(facts["holders"]))
    if facts.get("partitions"):
        problems.append("has partitions %s" % ", ".join(facts["partitions"]))
    if signature.get("PTTYPE"):
        problems.append("carries a %s partition table" % signature["PTTYPE"])
    if signature.get("TYPE"):
        kind = _MEMBER_TYPES.get(signature["TYPE"], "a %s filesystem" % signature["TYPE"])
        if signature.get("LABEL"):
            kind += " labelled %s" % signature["LABEL"]
        problems.append("holds %s" % kind)
    if not problems:
        return {"action": "format", "reason": "%s is blank" % path}
    if force_device and force_device == path and not mounts and not facts.get("holders"):
        return {"action": "format", "reason": "%s %s, and etcd_volume_force_device names it: it will be "
                "reformatted" % (path, "; ".join(problems))}
    return _refuse(
        "%s %s: it may hold someone's data, so it is left untouched. Use an empty disk, or, if its contents "
        "are truly disposable, unmount it and set etcd_volume_force_device: %s for this host"
        % (path, "; ".join(problems), path)
    )


def _refuse(reason: str) -> Dict[str, str]:
    return {"action": "refuse", "reason": reason}


def fdatasync_figures(report: Mapping[str, Any]) -> Dict[str, Any]:
    """Pick fdatasync latency figures out of fio's JSON report (fio 3.x)."""
    job = report["jobs"][0]
    sync = job["sync"]["lat_ns"]
    percentiles = sync.get("percentile") or {}

    def ms(value: float) -> float:
        return round(float(value) / 1e6, 3)

    return {
        "fdatasync_p99_ms": ms(percentiles.get("99.000000", sync["max"])),
        "fdatasync_p50_ms": ms(percentiles.get("50.000000", sync["mean"])),
        "fdatasync_max_ms": ms(sync["max"]),
        # fio counts the writes; with --fdatasync=1 each write is followed by one fdatasync.
        "syncs": int(job["sync"].get("total_ios") or job.get("write", {}).get("total_ios", 0)),
        "runtime_s": round(job.get("job_runtime", 0) / 1000.0, 2),
    }
