# -*- coding: utf-8 -*-
"""Action: send a pinned snapshot to a host only when it lacks it, with one checksum pass there.

1. The module on the host: does O(dest) already hold the pinned SHA-256? Then nothing is sent.
2. Otherwise the file goes through the connection as it is (sftp/scp, streamed, no checksum
   pass on the controller) into a temporary directory, and the module moves it into place
   after reading its SHA-256 once. ansible.builtin.copy would hash the file on the controller
   for every host and again on each host before our own check: three passes over a gigabyte
   on the critical path of a restore.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULE = "controlplane.etcd.etcd_snapshot_copy"
SPEC = dict(src=dict(type="path", required=True), dest=dict(type="path", required=True),
            sha256=dict(type="str", required=True))


class ActionModule(ActionBase):
    _supports_check_mode = True
    TRANSFERS_FILES = True

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        _valid, a = self.validate_argument_spec(argument_spec=SPEC)
        if not os.path.isfile(a["src"]):
            raise AnsibleActionFail("%s is not a file on the controller" % a["src"])
        args = dict(src=a["src"], dest=a["dest"], sha256=a["sha256"])
        probe = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
        if probe.get("failed"):
            return dict(result, **probe)
        if probe["present"] or self._task.check_mode:
            result.update(changed=not probe["present"], sent=False, sha256=probe["sha256"],
                          trailer_ok=probe["trailer_ok"])
            return result
        # The task's own temporary folder (TRANSFERS_FILES): Ansible removes it after the task.
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        staged = self._connection._shell.join_path(tmpdir, os.path.basename(a["dest"]))
        self._transfer_file(a["src"], staged)
        self._fixup_perms2((tmpdir, staged), execute=False)
        placed = self._execute_module(MODULE, module_args=dict(args, staged=staged), task_vars=task_vars)
        return dict(result, **placed)
