#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: inspect a block device and say whether it may become an etcd volume."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_block_device
short_description: Inspect a block device and decide if it may hold an etcd volume
description:
  - Reads a device's signatures (filesystem, partition table, LVM, RAID, LUKS, swap) with
    C(blkid -p), its partitions and holders from sysfs, and its mounts from
    C(/proc/self/mountinfo).
  - Returns an C(action) - C(format) for a blank device, C(mount) for a device that already
    carries this toolkit's labelled filesystem, or C(refuse) with the reason and the fix.
  - A device with any signature is refused unless O(force_device) names that exact device;
    a mounted device, or one holding the root filesystem, is refused even then.
  - Never changes anything.
extends_documentation_fragment:
  - controlplane.etcd.read_only
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
options:
  path:
    description: Device path, preferably a stable C(/dev/disk/by-id/...) path.
    type: path
    required: true
  label:
    description: Filesystem label this toolkit gives its volumes; a device carrying it is ours.
    type: str
    required: true
  expected_mount:
    description: Where the volume belongs; being mounted there already is not a problem.
    type: path
  force_device:
    description:
      - When equal to O(path), a device with old signatures may be reformatted. Meant for
        disposable disks only; never applies to a mounted device.
    type: str
    default: ""
requirements:
  - util-linux (blkid) on the managed host
"""

EXAMPLES = r"""
- name: Decide what to do with the data disk
  controlplane.etcd.etcd_block_device:
    path: /dev/disk/by-id/nvme-Samsung_SSD_980_PRO_1TB_S5GXNX0T123456
    label: etcd-data
    expected_mount: /var/lib/etcd
  register: disk

- name: Refuse a disk that holds data
  ansible.builtin.assert:
    that: disk.action != 'refuse'
    fail_msg: "{{ disk.reason }}"
"""

RETURN = r"""
action:
  description: C(format), C(mount) or C(refuse).
  returned: always
  type: str
  sample: format
reason:
  description: Why, in a sentence that names the device and, for a refusal, the fix.
  returned: always
  type: str
device:
  description: What was found.
  returned: always
  type: dict
  contains:
    path:
      description: The path asked about.
      type: str
    resolved:
      description: The device node it resolves to.
      type: str
    size_bytes:
      description: Size of the device.
      type: int
    signature:
      description: "KEY=value pairs blkid reported: TYPE, LABEL, UUID, PTTYPE and so on."
      type: dict
    partitions:
      description: Partition names on the device.
      type: list
      elements: str
    holders:
      description: "Devices stacked on it: device-mapper, md."
      type: list
      elements: str
    mountpoints:
      description: Where it or its partitions are mounted.
      type: list
      elements: str
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_volume import (
    mountpoints_of,
    parse_blkid_export,
    sysfs_block_dir,
    verdict,
)


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def inspect(module: AnsibleModule, path: str) -> dict:
    facts = {"path": path, "resolved": os.path.realpath(path), "exists": os.path.exists(path),
             "is_block": False, "size_bytes": 0, "signature": {}, "partitions": [], "holders": [],
             "mountpoints": []}
    if not facts["exists"]:
        return facts
    info = os.stat(path)
    facts["is_block"] = stat.S_ISBLK(info.st_mode)
    if not facts["is_block"]:
        return facts
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    dev_ids = ["%d:%d" % (major, minor)]
    # sysfs by number, so renamed nodes (a loop device passed into a container) resolve too.
    block = sysfs_block_dir(major, minor)
    if block:
        facts["size_bytes"] = int(_read(os.path.join(block, "size")).strip() or 0) * 512
        facts["holders"] = sorted(os.listdir(os.path.join(block, "holders"))) \
            if os.path.isdir(os.path.join(block, "holders")) else []
        for child in sorted(os.listdir(block)):
            if os.path.exists(os.path.join(block, child, "partition")):
                facts["partitions"].append(child)
                dev_ids.append(_read(os.path.join(block, child, "dev")).strip())
    blkid = module.get_bin_path("blkid", required=True)
    rc, out, err = module.run_command([blkid, "-p", "-o", "export", path])
    if rc not in (0, 2):  # 2 means no signature found
        module.fail_json(msg="blkid could not probe %s: %s" % (path, err.strip() or out.strip()))
    facts["signature"] = parse_blkid_export(out) if rc == 0 else {}
    facts["mountpoints"] = mountpoints_of(_read("/proc/self/mountinfo"), dev_ids)
    if facts["resolved"] in _read("/proc/swaps"):
        facts["mountpoints"].append("[swap]")
    return facts


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            label=dict(type="str", required=True),
            expected_mount=dict(type="path"),
            force_device=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    facts = inspect(module, module.params["path"])
    facts["expected_mount"] = module.params["expected_mount"]
    decision = verdict(facts, module.params["label"], module.params["force_device"])
    module.exit_json(changed=False, action=decision["action"], reason=decision["reason"], device=facts)


if __name__ == "__main__":
    main()
