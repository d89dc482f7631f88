#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: folders, small text files and links in one round trip."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_files
short_description: Bring a role's folders, text files and links to their wanted state in one round trip
description:
  - Applies every entry of O(files) in order, so list a folder before the files in it.
    One module run replaces a loop of M(ansible.builtin.file), M(ansible.builtin.copy) and
    M(ansible.builtin.template) tasks, which cost a round trip per file.
  - A file is written only when its content differs, atomically, with owner, group and mode
    set before it appears. Content always ends with a newline. Render templates on the
    controller with the C(ansible.builtin.template) lookup.
  - Nothing is deleted. A file or folder standing where a link belongs is moved aside to
    C(<path>.replaced-<UTC time>); a folder where a file belongs (or the reverse) is refused.
  - For small text files only; secrets belong in a task of their own with C(no_log).
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
attributes:
  check_mode:
    support: full
    description: Reports what would change; accounts an earlier task would create are assumed.
  diff_mode:
    support: full
    description: Shows the old and new text of each changed file and the old and new target of each link.
options:
  files:
    description: The folders, files and links, applied in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description: What stands at O(files[].path).
        type: str
        choices: [file, directory, link]
        default: file
      content:
        description: Text of a file (O(files[].state=file)).
        type: str
      src:
        description: Target of a link (O(files[].state=link)).
        type: str
      owner:
        description: Owning account (not for links). Omitted, a new path belongs to root and an existing one keeps its owner.
        type: str
      group:
        description: Owning group (not for links). Omitted, a new path gets root's group and an existing one keeps its group.
        type: str
      mode:
        description: Octal permissions, such as C("0644") (not for links).
        type: str
"""

EXAMPLES = r"""
- name: Install the backup job
  controlplane.etcd.etcd_files:
    files:
      - {path: /etc/etcd-backup, state: directory, group: etcd-backup, mode: "0750"}
      - path: /etc/etcd-backup/config.json
        content: "{{ settings | to_nice_json }}"
        group: etcd-backup
        mode: "0640"
      - path: /etc/systemd/system/etcd-backup.service
        content: "{{ lookup('ansible.builtin.template', 'etcd-backup.service.j2') }}"
        mode: "0644"
  register: installed
"""

RETURN = r"""
changed_paths:
  description: Paths created, rewritten, re-linked or given another owner or mode.
  returned: always
  type: list
  elements: str
  sample: ["/etc/systemd/system/etcd-backup.service"]
moved_aside:
  description: Files or folders moved out of the way of a link, never deleted.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_files


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(files=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["file", "directory", "link"], default="file"),
            content=dict(type="str"),
            src=dict(type="str"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="str"),
        ), required_if=[("state", "file", ["content"]), ("state", "link", ["src"])])),
        supports_check_mode=True,
    )
    try:
        out = etcd_files.apply(module.params["files"], check=module.check_mode, want_diff=module._diff)
    except (etcd_files.FilesError, OSError) as e:
        module.fail_json(msg="Refused: %s" % e)
    result = dict(changed=bool(out.changed), changed_paths=out.changed, moved_aside=out.moved_aside)
    if out.diff:
        result["diff"] = out.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
