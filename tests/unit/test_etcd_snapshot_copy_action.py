"""The snapshot copy's transport choice: stream through the connection's ssh, or fall back."""
from __future__ import annotations

import os
import stat
from types import SimpleNamespace
from typing import Any, List, Optional

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.controlplane.etcd.plugins.action.etcd_snapshot_copy import ActionModule, receive_command


class Become:
    def __init__(self, password: Optional[str] = None) -> None:
        self.password = password

    def get_option(self, name: str) -> Any:
        return self.password if name == "become_pass" else None

    def build_become_command(self, cmd: str, shell: Any) -> str:
        return "sudo -H -S -n -u root /bin/sh -c %r" % cmd


class Connection:
    def __init__(self, transport: str = "ssh", password: Optional[str] = None, become: Optional[Become] = None) -> None:
        self.transport, self.password, self.become, self._shell, self.host = transport, password, become, None, None
        self.built: List[Any] = []

    def get_option(self, name: str) -> Any:
        return {"password": self.password, "host": "10.0.0.1", "ssh_executable": "ssh"}.get(name)

    def _build_command(self, binary: str, subsystem: str, *args: str) -> List[Any]:
        self.built.append((binary, subsystem) + args)
        return [binary, "-o", "ControlPath=x"] + list(args)


def action(conn: Connection, password: Optional[str] = None) -> ActionModule:
    a = object.__new__(ActionModule)
    a._connection = conn
    a._play_context = SimpleNamespace(password=password, become_pass=None, remote_addr="10.0.0.1")
    a.ran = []
    a._low_level_execute_command = lambda cmd, **kw: a.ran.append(cmd)
    return a


def test_receive_command_is_private_and_quoted() -> None:
    assert receive_command("/var/lib/etcd restore/x.db.upload") == "umask 077 && cat > '/var/lib/etcd restore/x.db.upload'"


def test_ssh_streams_through_the_connections_own_command_line() -> None:
    conn = Connection()
    cmd = action(conn)._ssh_stream("/s/x.upload")
    assert cmd == ["ssh", "-o", "ControlPath=x", "10.0.0.1", "/bin/sh -c 'umask 077 && cat > /s/x.upload'"]
    assert conn.built[0][:3] == ("ssh", "ssh", "10.0.0.1")


def test_become_wraps_the_receiver() -> None:
    cmd = action(Connection(become=Become()))._ssh_stream("/s/x.upload")
    assert cmd is not None and "sudo -H -S -n -u root" in cmd[-1] and "cat > /s/x.upload" in cmd[-1]


@pytest.mark.parametrize("conn, password", [
    (Connection(transport="local"), None),
    (Connection(transport="community.docker.docker"), None),
    (Connection(password="secret"), None),
    (Connection(), "secret"),
    (Connection(become=Become("secret")), None),
], ids=["local", "docker", "ssh password", "play password", "become password"])
def test_falls_back_to_the_connections_file_transfer(conn: Connection, password: Optional[str]) -> None:
    assert action(conn, password)._ssh_stream("/s/x.upload") is None


def test_stream_writes_the_file_privately(tmp_path: Any) -> None:
    src, upload = tmp_path / "snap.db", tmp_path / "snap.db.upload"
    src.write_bytes(os.urandom(300_000))
    a = action(Connection())
    a._stream(["sh", "-c", receive_command(str(upload))], str(src), str(upload))
    assert upload.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(upload.stat().st_mode) == 0o600
    assert a.ran == []


def test_a_broken_stream_fails_and_removes_the_partial_upload(tmp_path: Any) -> None:
    src = tmp_path / "snap.db"
    src.write_bytes(b"x" * 1000)
    a = action(Connection())
    with pytest.raises(AnsibleActionFail, match=r"ssh exit 3\): connection reset"):
        a._stream(["sh", "-c", "cat >/dev/null; echo connection reset >&2; exit 3"], str(src), "/s/x.upload")
    assert a.ran == ["rm -f /s/x.upload"]
