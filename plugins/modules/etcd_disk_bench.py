#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: measure fdatasync latency where etcd keeps its data, with fio."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_disk_bench
short_description: Measure fdatasync latency of the etcd data volume with fio
description:
  - Runs the fio job etcd's documentation points to (sequential 2300-byte writes, each followed
    by fdatasync, 22 MiB in total) in a temporary folder inside O(directory), and reports the
    fdatasync latency percentiles. etcd's WAL does exactly this, so the 99th percentile is what
    decides whether the disk can keep a cluster stable (upstream asks for under 10 ms).
  - Removes its temporary folder afterwards; nothing else is written.
extends_documentation_fragment:
  - controlplane.etcd.read_only
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
options:
  directory:
    description:
      - A folder on the filesystem to measure (the data directory or its volume). When it does
        not exist yet, its nearest existing parent is measured.
    type: path
    required: true
  size:
    description: Total bytes fio writes.
    type: str
    default: 22m
  block_size:
    description: Bytes per write.
    type: int
    default: 2300
  fio:
    description: Path of fio; found on PATH when omitted.
    type: path
requirements:
  - fio on the managed host
"""

EXAMPLES = r"""
- name: Measure the data volume
  controlplane.etcd.etcd_disk_bench:
    directory: /var/lib/etcd
  register: disk

- name: Refuse a slow disk
  ansible.builtin.assert:
    that: disk.fdatasync_p99_ms < 10
"""

RETURN = r"""
fdatasync_p99_ms:
  description: 99th percentile fdatasync latency in milliseconds.
  returned: success
  type: float
  sample: 3.78
fdatasync_p50_ms:
  description: Median fdatasync latency in milliseconds.
  returned: success
  type: float
fdatasync_max_ms:
  description: Slowest fdatasync in milliseconds.
  returned: success
  type: float
syncs:
  description: Number of fdatasync calls measured.
  returned: success
  type: int
runtime_s:
  description: How long the job ran.
  returned: success
  type: float
"""

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_volume import fdatasync_figures


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            directory=dict(type="path", required=True),
            size=dict(type="str", default="22m"),
            block_size=dict(type="int", default=2300),
            fio=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    fio = module.params["fio"] or module.get_bin_path("fio")
    if not fio:
        module.fail_json(msg="fio is not installed: install the fio package, or set etcd_disk_benchmark: never")
    # Before the data directory exists, measure the filesystem it will be created on.
    directory = module.params["directory"]
    while directory and not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    scratch = tempfile.mkdtemp(prefix=".etcd-disk-bench-", dir=directory or "/")
    try:
        rc, out, err = module.run_command([
            fio, "--name=etcd-fdatasync", "--rw=write", "--ioengine=sync", "--fdatasync=1",
            "--directory=" + scratch, "--size=" + module.params["size"],
            "--bs=%d" % module.params["block_size"], "--output-format=json",
        ])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if rc != 0:
        module.fail_json(msg="fio failed in %s: %s" % (module.params["directory"], err.strip() or out.strip()))
    try:
        figures = fdatasync_figures(json.loads(out[out.index("{"):]))
    except (ValueError, KeyError, IndexError) as exc:
        module.fail_json(msg="could not read fio's report: %s" % exc)
    module.exit_json(changed=False, **figures)


if __name__ == "__main__":
    main()
