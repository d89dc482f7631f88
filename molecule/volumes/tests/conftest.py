"""Volumes scenario: members v1-v3, v1 also holds someone else's disk at /dev/nvme2n1."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "common"))

import harness  # noqa: E402

MEMBERS = {"v1": "172.31.242.11", "v2": "172.31.242.12", "v3": "172.31.242.13"}
harness.configure(MEMBERS, Path(__file__).resolve().parents[1] / "inventory")
