#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: read an etcd snapshot file offline (checksums, revision, live keys)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_snapshot_info
short_description: Read an etcd snapshot file offline - checksums, revision and live keys
description:
  - Reads a snapshot written by C(etcdctl snapshot save) (a bbolt database followed by its
    SHA-256), or a member's C(member/snap/db), without etcd and without changing it.
  - Returns the file's SHA-256, whether the SHA-256 trailer matches, the checksum kept
    beside it in C(<path>.sha256), the snapshot's revision and the number of live keys.
  - RV(live_keys) is what C(etcdctl get "" --prefix --count-only) reports on a cluster
    restored from this file. C(snapshot status) reports C(totalKey) instead, which counts
    every kept revision and etcd's own rows, and changes with the restore itself
    (C(--bump-revision) adds one), so it cannot be compared with a restored cluster.
  - Runs on a member, or on the controller with C(delegate_to=localhost); needs no etcd binary.
extends_documentation_fragment:
  - controlplane.etcd.read_only
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
options:
  path:
    description:
      - The snapshot file (or a bbolt C(db) file of a member).
    type: path
    required: true
  read_keys:
    description:
      - Also read the revision and the live keys. V(false) only checksums the file (a copy
        whose SHA-256 matches a file already read needs nothing more); RV(revision),
        RV(live_keys) and RV(revisions) are then null.
    type: bool
    default: true
notes:
  - Reads the file twice, once for the checksum and once for the keys (mapped, never loaded
    whole); a 1.3 GB snapshot with a million keys takes under 10 seconds. The names of the
    live keys are held in memory while they are counted, about 100 MB for a million keys.
"""

EXAMPLES = r"""
- name: Read the snapshot on the controller
  controlplane.etcd.etcd_snapshot_info:
    path: /srv/etcd-backups/etcd-main-20240101T000000Z-r157.db
  register: snap
  delegate_to: localhost
  run_once: true

- name: Refuse a damaged file
  ansible.builtin.assert:
    that:
      - snap.trailer_ok
      - snap.sha256_file is not none and snap.sha256_file.split()[0] == snap.sha256

- name: After the restore, the cluster must hold exactly the snapshot's keys
  ansible.builtin.command:
    argv: [/usr/local/bin/etcdctl, get, "", --prefix, --count-only, -w, json]
  register: count
  changed_when: false
  failed_when: (count.stdout | from_json).count | int != snap.live_keys
"""

RETURN = r"""
path:
  description: The file that was read.
  returned: success
  type: str
sha256:
  description: SHA-256 of the whole file, trailer included (what C(sha256sum) prints).
  returned: success
  type: str
  sample: 0f3c0e0b9d6f1bbf1d0ee4e5aa3f3f6bb2c8d51c1b8b3b1f3c86b0ea6f2e4c11
size:
  description: File size in bytes.
  returned: success
  type: int
  sample: 122912
trailer_ok:
  description:
    - Whether the SHA-256 that C(snapshot save) appends matches the rest of the file.
    - V(null) when the file has no trailer (its size % 512 is not 32), as a member's C(db) file.
  returned: success
  type: bool
sha256_file:
  description: Content of C(<path>.sha256), as the backup job writes it (C(<sha256>  <name>)); V(null) when missing.
  returned: success
  type: str
readable:
  description: Whether the file reads as an etcd snapshot (bbolt pages, etcd's key history); null without O(read_keys).
  returned: success
  type: bool
error:
  description: Why the file does not read as a snapshot; V(null) when RV(readable).
  returned: success
  type: str
revision:
  description:
    - Highest main revision in the file; V(0) for a cluster that never saw a write; V(null) when not RV(readable).
    - A file restored with C(--bump-revision N) holds the snapshot's revision plus N.
  returned: success
  type: int
  sample: 157
live_keys:
  description: Keys that exist at RV(revision) (deleted and expired keys are not counted); V(null) when not RV(readable).
  returned: success
  type: int
  sample: 126
revisions:
  description: Entries of etcd's key history in the file (each kept revision and tombstone).
  returned: success
  type: int
  sample: 133
buckets:
  description: Names of the file's top-level bbolt buckets.
  returned: success
  type: list
  elements: str
  sample: [alarm, auth, authRoles, authUsers, cluster, key, lease, members, members_removed, meta]
"""

import os
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_backup import TRAILER, file_digests
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_snapshot import SnapshotError, read_snapshot

# A .sha256 file holds one line; anything much longer is not one.
SHA256_FILE_MAX = 4096


def snapshot_info(path: str, read_keys: bool = True) -> Dict[str, Any]:
    """The module's result for ``path``; raises OSError (missing, unreadable) or SnapshotError (not a file).

    A file that is not a readable snapshot still gets its SHA-256 and .sha256 back, with
    readable false and the reason in error: a restore then names every problem at once.
    """
    # A directory, FIFO or device is refused before it is opened (a FIFO would block).
    if os.path.exists(path) and not os.path.isfile(path):
        raise SnapshotError("%s is not a regular file" % path)
    size = os.path.getsize(path)
    contents: Optional[Any] = None
    error = None
    if read_keys:
        try:
            contents = read_snapshot(path)
        except SnapshotError as e:
            error = str(e)
    sha256, trailer_ok = file_digests(path)
    return dict(path=path, sha256=sha256, size=size,
                trailer_ok=trailer_ok if size % 512 == TRAILER else None,
                sha256_file=_read_sha256_file(path + ".sha256"),
                readable=contents is not None if read_keys else None, error=error,
                revision=contents.revision if contents else None, live_keys=contents.live_keys if contents else None,
                revisions=contents.revisions if contents else None, buckets=contents.buckets if contents else [])


def _read_sha256_file(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(SHA256_FILE_MAX)
    except FileNotFoundError:
        return None


def main() -> None:
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True),
                                              read_keys=dict(type="bool", default=True)), supports_check_mode=True)
    path = module.params["path"]
    try:
        result = snapshot_info(path, read_keys=module.params["read_keys"])
    except SnapshotError as e:
        module.fail_json(msg="not a readable etcd snapshot: %s" % e, path=path)
    except OSError as e:
        module.fail_json(msg="cannot read %s: %s" % (path, e.strerror or e), path=path)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
