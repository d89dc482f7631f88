"""Shared helpers for the verify step: real members, real clients, no mocks."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "common"))

import harness  # noqa: E402
from harness import PKI  # noqa: E402,F401

MEMBERS = {"m1": "172.31.241.11", "m2": "172.31.241.12", "m3": "172.31.241.13"}
harness.configure(MEMBERS, Path(__file__).resolve().parents[1] / "inventory", others=["172.31.241.20"])


def etcdctl(host, args: str, check: bool = True):
    """Run etcdctl as root through a login shell, i.e. with the member's etcdctl.env."""
    # etcdctl aborts when a flag shadows an ETCDCTL_* variable, so drop the one we override.
    unset = "env -u ETCDCTL_ENDPOINTS " if "--endpoints" in args else ""
    cmd = host.run("sudo -i %setcdctl %s" % (unset, args))
    if check:
        assert cmd.rc == 0, "etcdctl %s failed: %s %s" % (args, cmd.stdout, cmd.stderr)
    return cmd


def json_of(host, args: str):
    return json.loads(etcdctl(host, args + " -w json").stdout)


@pytest.fixture(scope="session")
def ca_key_digest() -> str:
    return hashlib.sha256((PKI / "ca.key").read_bytes()).hexdigest()
