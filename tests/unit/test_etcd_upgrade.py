"""Upgrade-path rules, including 3.5 -> 3.6 (no 3.6 binary here: key lists from tests/reference)."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_config
from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_upgrade as u

FLAGS = Path(__file__).resolve().parents[1] / "reference" / "etcd-flags"


@pytest.mark.parametrize("current, target, kind", [
    ("3.5.16", "3.5.16", "none"), ("3.5.16", "3.5.30", "patch"), ("3.4.23", "3.5.30", "minor"),
    ("3.5.32", "3.6.0", "minor"), ("3.4.23", "3.6.0", "refused"), ("3.5.30", "3.5.16", "refused"),
    ("3.6.0", "3.5.32", "refused"),
])
def test_kinds(current, target, kind):
    assert u.upgrade_kind(current, target) == kind


@pytest.mark.parametrize("current, target, auth", [
    (["3.5.16"] * 3, "3.5.30", True),
    (["3.4.23"] * 3, "3.5.30", False),
    (["3.5.32"] * 3, "3.6.14", True),
    (["3.5.30", "3.5.30", "3.5.16"], "3.5.30", True),  # a re-run resumes
    (["3.5.30"] * 3, "3.5.30", True),                  # nothing left to do
])
def test_allowed_paths(current, target, auth):
    assert u.path_problems(current, target, auth) == []


@pytest.mark.parametrize("current, target, auth, words", [
    (["3.4.23"] * 3, "3.6.0", False, ["skips a minor version", "newest 3.5 release first"]),
    (["3.5.30"] * 3, "3.5.16", False, ["is a downgrade", "restore the snapshot"]),
    (["3.6.2"] * 3, "3.5.32", False, ["is a downgrade", "etcdctl downgrade validate/enable"]),
    (["3.4.23"] * 3, "3.5.30", True, ["authentication on is not supported upstream", "etcd_rbac_enabled: false"]),
    (["3.5.30"] * 3, "3.6.0", False, ["requires 3.5.32 or newer before 3.6", "upgrade to 3.5.32+ first"]),
    (["3.5.16", "3.5.30", "3.5.30"], "3.6.0", False, ["members run different versions (3.5.16, 3.5.30)"]),
])
def test_refused_paths_name_the_reason_and_the_way_out(current, target, auth, words):
    problems = u.path_problems(current, target, auth)
    assert problems and all(any(w in p for p in problems) for w in words), problems


def _keys(name: str) -> set:
    return {line.strip() for line in (FLAGS / name).read_text().splitlines() if line.strip()}


def _settings() -> dict:
    return {"name": "m1", "address": "10.0.0.1", "data_dir": "/var/lib/etcd", "pki_dir": "/etc/etcd/pki",
            "initial_cluster": "m1=https://10.0.0.1:2380", "initial_cluster_token": "t",
            "heartbeat_interval": 100, "election_timeout": 1000, "peer_allowed_cn": "etcd-peer",
            "listen_metrics_urls": ["https://10.0.0.1:2381"]}


def test_the_configuration_rendered_for_36_has_no_key_36_removed():
    config = etcd_config.render(_settings(), "3.6.0")
    assert u.removed_keys(config, _keys("config-file-keys-3.6.0.txt")) == []


def test_an_extra_key_36_removed_is_found_before_the_upgrade():
    # enable-v2 is gone in 3.6 (upgrade_3_6.md: remove it before upgrading).
    config = etcd_config.render(dict(_settings(), extra={"enable-v2": False}), "3.6.0")
    assert u.removed_keys(config, _keys("config-file-keys-3.6.0.txt")) == ["enable-v2"]
    assert u.removed_keys(etcd_config.render(dict(_settings(), extra={"enable-v2": False}), "3.5.30"),
                          _keys("config-file-keys-3.5.33.txt")) == []
