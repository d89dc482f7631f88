# -*- coding: utf-8 -*-
"""Action: send a pinned snapshot to a host only when it lacks it, with one checksum pass there.

1. The module on the host: does O(dest) already hold the pinned SHA-256? Then nothing is sent.
2. Otherwise the file is sent as it is, with no checksum pass on the controller. Over the ssh
   connection it is streamed through the connection's own ssh (its options and control socket)
   into ``cat`` beside O(dest), which is as fast as ``ssh host cat``; sftp's request protocol
   costs a gigabyte several seconds more per host. Other connections, or one that needs a
   password typed in, use the connection's own file transfer into a temporary directory.
3. The module moves the upload into place after reading its SHA-256 once. ansible.builtin.copy
   would hash the file on the controller for every host and again on each host before our own
   check: three passes over a gigabyte on the critical path of a restore.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

MODULE = "controlplane.etcd.etcd_snapshot_copy"
SPEC = dict(src=dict(type="path", required=True), dest=dict(type="path", required=True),
            sha256=dict(type="str", required=True))
display = Display()


def receive_command(upload: str) -> str:
    """The shell command that writes stdin to ``upload``, private from its first byte."""
    return "umask 077 && cat > %s" % shlex.quote(upload)


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
        staged = a["dest"] + ".upload"
        ssh = self._ssh_stream(staged)
        if ssh:
            self._stream(ssh, a["src"], staged)
        else:
            # The task's own temporary folder (TRANSFERS_FILES): Ansible removes it after the task.
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            staged = self._connection._shell.join_path(tmpdir, os.path.basename(a["dest"]))
            self._transfer_file(a["src"], staged)
            self._fixup_perms2((tmpdir, staged), execute=False)
        placed = self._execute_module(MODULE, module_args=dict(args, staged=staged), task_vars=task_vars)
        return dict(result, **placed)

    def _ssh_stream(self, upload: str) -> Optional[List[bytes]]:
        """The local ssh command line that streams stdin into ``upload``, or None to use the
        connection's file transfer: not ssh, a password to type, or an Ansible without the hook."""
        conn = self._connection
        if conn.transport.split(".")[-1] != "ssh" or not hasattr(conn, "_build_command"):
            return None
        if conn.get_option("password") or self._play_context.password:
            return None
        cmd = receive_command(upload)
        if conn.become:  # set only when the task becomes another user
            if conn.become.get_option("become_pass") or self._play_context.become_pass:
                return None
            cmd = conn.become.build_become_command(cmd, conn._shell)
        cmd = "/bin/sh -c %s" % shlex.quote(cmd)
        conn.host = conn.get_option("host") or self._play_context.remote_addr
        return conn._build_command(conn.get_option("ssh_executable"), "ssh", conn.host, cmd)

    def _stream(self, ssh: List[bytes], src: str, upload: str) -> None:
        display.vvv("STREAM %s TO %s" % (src, upload), host=self._connection.host)
        with open(src, "rb") as f:
            done = subprocess.run(ssh, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            self._low_level_execute_command("rm -f %s" % shlex.quote(upload))
            raise AnsibleActionFail("sending %s to %s failed (ssh exit %d): %s"
                                    % (src, upload, done.returncode, done.stderr.decode(errors="replace").strip()))
