"""Shared helpers for the upgrade scenario: real members, a real etcd client library, no mocks."""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "common"))

import harness  # noqa: E402

MEMBERS = {"u1": "172.31.243.11", "u2": "172.31.243.12", "u3": "172.31.243.13"}
# Outside the cluster until the scaling and replacement tests (test_upgrade_then_scale_and_replace.py).
SPARES = {"u4": "172.31.243.14", "u5": "172.31.243.15"}
harness.configure(MEMBERS, Path(__file__).resolve().parents[1] / "inventory", others=list(SPARES.values()))
WRITER = Path(__file__).resolve().parents[2] / "common" / "writer.py"
ENDPOINTS = ",".join("https://%s:2379" % a for a in MEMBERS.values())


def running_versions() -> Dict[str, str]:
    """member -> the version its etcd reports now ('' when it does not answer)."""
    versions = {}
    for name, address in MEMBERS.items():
        answer = harness.ssh(name, "sudo -i env -u ETCDCTL_ENDPOINTS etcdctl --endpoints=https://%s:2379 endpoint status -w json" % address,
                             check=False)
        try:
            versions[name] = json.loads(answer.stdout)[0]["Status"]["version"]
        except (ValueError, LookupError):
            versions[name] = ""
    return versions


def cluster_version() -> str:
    answer = harness.ssh("u1", "sudo curl -sS --cacert /etc/etcd/pki/ca.crt --cert /etc/etcd/pki/admin.crt "
                               "--key /etc/etcd/pki/admin.key https://172.31.243.11:2379/version", check=False)
    return json.loads(answer.stdout or "{}").get("etcdcluster", "")


class Writer:
    """writer.py in the background over every endpoint, as the application `writer`."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.result = folder / "writer.json"
        self.stop_file = folder / "writer.stop"
        self.certs = self._fetch_certificate()
        self.process: Optional[subprocess.Popen] = None

    def _fetch_certificate(self) -> List[str]:
        files = []
        for name in ("ca.crt", "writer.crt", "writer.key"):
            path = self.folder / name
            path.write_text(harness.ssh("u1", "sudo cat /etc/etcd-client/writer/%s" % name).stdout)
            path.chmod(0o600)
            files.append(str(path))
        return files

    def _tls(self) -> List[str]:
        ca, cert, key = self.certs
        return ["--endpoints", ENDPOINTS, "--cacert", ca, "--cert", cert, "--key", key]

    def start(self) -> "Writer":
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), "run", *self._tls(), "--prefix", self.prefix, "--rate", "50",
             "--out", str(self.result), "--stop-file", str(self.stop_file)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        atexit.register(self._end)  # a failed test must not leave it writing
        time.sleep(3)  # writing before anything is touched
        assert self.process.poll() is None, self.process.communicate()[0]
        return self

    def _end(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()

    def acked(self) -> int:
        return len(json.loads(self.result.read_text())["acked"]) if self.result.exists() else 0

    def stop(self) -> dict:
        self.stop_file.touch()
        output, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, output
        return json.loads(self.result.read_text())

    def verify(self) -> dict:
        answer = subprocess.run([sys.executable, str(WRITER), "verify", *self._tls(), "--result", str(self.result)],
                                capture_output=True, text=True, timeout=120)
        report = json.loads(answer.stdout)
        assert answer.returncode == 0, (report, answer.stderr)
        return report


def under_load(writer: Writer, run: Callable[[], subprocess.CompletedProcess],
               no_failed_attempt: bool) -> subprocess.CompletedProcess:
    """Run a playbook while the writer writes. No acknowledged write may be lost; with
    no_failed_attempt not even one attempt may fail. A restart or a removal closes the writer's
    connection to that member: the attempt is retried on the next one, and the stall stays short."""
    writer.start()
    try:
        result = run()
    finally:
        report = writer.stop()
    assert result.returncode == 0, " ".join((result.stdout + result.stderr).split())[-3000:]
    summary = {k: report[k] for k in ("failed_attempts", "longest_stall_ms", "attempts")}
    print("writer:", summary)
    assert len(report["acked"]) > 50, summary
    assert report["failed_attempts"] == 0 if no_failed_attempt else report["longest_stall_ms"] < 10000, summary
    checked = writer.verify()
    assert checked["missing_count"] == 0 and checked["present"] == len(report["acked"]), checked
    return result


def playbook_env() -> Dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")
