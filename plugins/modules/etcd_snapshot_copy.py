#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module (with an action plugin): put the pinned snapshot on a member, checked once."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_snapshot_copy
short_description: Copy a pinned etcd snapshot from the controller to a host, checked by its SHA-256
description:
  - Sends a snapshot file from the controller to O(dest) on the host, only when the host does
    not already hold a file with the pinned O(sha256). Writes C(<dest>.sha256) beside it.
  - The file is sent as it is (no checksum passes of C(ansible.builtin.copy) on either side).
    Over an ssh connection it is streamed through the connection's own ssh command line into
    C(cat) beside O(dest) (as fast as C(ssh host cat)); other connections, and ssh or become
    passwords typed in, use the connection's file transfer into its temporary directory.
  - The upload is renamed into place when it is on the same file system. Its SHA-256 is read
    once on the host; a copy that does not match never reaches O(dest) and the task fails.
  - Made for snapshots of a gigabyte or more on the critical path of a restore; small files
    are better served by C(ansible.builtin.copy).
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
attributes:
  check_mode:
    support: full
    description: Reports whether the file would be sent, and sends nothing.
  diff_mode:
    support: none
    description: A snapshot is binary; RV(sent) says whether it was sent.
options:
  src:
    description: The snapshot on the controller.
    type: path
    required: true
  dest:
    description: Where the host keeps it (owned by root, mode 0600). Its directory must exist.
    type: path
    required: true
  sha256:
    description: The pinned SHA-256 (hex) the copy must have.
    type: str
    required: true
  staged:
    description: Set by the action plugin, not by hand - the uploaded file to move into place.
    type: path
"""

EXAMPLES = r"""
- name: Copy the pinned snapshot to every member
  controlplane.etcd.etcd_snapshot_copy:
    src: /srv/etcd-backups/etcd-main-20240101T000000Z-r157.db
    dest: /var/lib/etcd-restore/etcd-main-20240101T000000Z-r157.db
    sha256: "{{ snap.sha256 }}"
  become: true
  register: copy
"""

RETURN = r"""
sha256:
  description: SHA-256 of the file now at O(dest); null in check mode when it would be sent.
  returned: always
  type: str
trailer_ok:
  description: Whether etcd's SHA-256 trailer inside the file matches; null as for RV(sha256).
  returned: always
  type: bool
sent:
  description: Whether the file was sent (false when the host already held it).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_restore import place_copy


def main() -> None:
    module = AnsibleModule(argument_spec=dict(src=dict(type="path", required=True), dest=dict(type="path", required=True),
                                              sha256=dict(type="str", required=True), staged=dict(type="path")),
                           supports_check_mode=True)
    p = module.params
    try:
        result = place_copy(None if module.check_mode else p["staged"], p["dest"], p["sha256"])
    except ValueError as e:
        module.fail_json(msg=str(e))
    except OSError as e:
        module.fail_json(msg="cannot place %s: %s" % (p["dest"], e.strerror or e))
    module.exit_json(changed=result["changed"], sha256=result["sha256"], trailer_ok=result["trailer_ok"],
                     present=result["present"], sent=result["changed"])


if __name__ == "__main__":
    main()
