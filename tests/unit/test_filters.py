"""Controller-side filters that wrap the shared rules."""
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.controlplane.etcd.plugins.filter import etcd as filters

SUMS = """\
0f0e3c3bd6f3b4e0e33d8c3e7f0a4b7a2d6a1c6f0b1d9e8f7a6b5c4d3e2f1a0b  etcd-v3.5.30-linux-amd64.tar.gz
1111111111111111111111111111111111111111111111111111111111111111  etcd-v3.5.30-linux-arm64.tar.gz
"""


def test_checksum_is_picked_by_exact_file_name():
    assert filters.etcd_release_checksum(SUMS, "etcd-v3.5.30-linux-arm64.tar.gz") == "1" * 64


def test_missing_checksum_is_refused_with_a_fix():
    with pytest.raises(AnsibleFilterError, match="etcd_release_mirror"):
        filters.etcd_release_checksum(SUMS, "etcd-v3.5.30-linux-s390x.tar.gz")


def test_unknown_architecture_maps_to_empty():
    assert filters.etcd_arch("x86_64") == "amd64"
    assert filters.etcd_arch("mips") == ""


def test_version_facts():
    facts = filters.etcd_version_facts("3.4.23")
    assert facts == {"version": "3.4.23", "minor": "3.4", "has_etcdutl": False, "has_livez": False,
                     "tls_min_version": False}


def test_all_filters_registered():
    names = set(filters.FilterModule().filters())
    assert {"etcd_member_config", "etcd_preflight_report", "etcd_rolling_order"} <= names


def test_file_hash_follows_the_file_and_is_empty_when_missing(tmp_path):
    binary = tmp_path / "etcd"
    assert filters.etcd_file_sha256(binary) == ""
    binary.write_bytes(b"v3.5.30")
    first = filters.etcd_file_sha256(binary)
    assert first == "4382caff8715d390875fb58c8d2efd373e91250560aaf4b44b29a39ea30ca69a"
    binary.write_bytes(b"v3.5.16 and longer")
    assert filters.etcd_file_sha256(binary) not in ("", first)


def test_links_point_stable_names_at_the_release():
    assert filters.etcd_links(["etcd", "etcdctl"], "/opt/etcd/v3.5.30", "/usr/local/bin") == [
        {"path": "/usr/local/bin/etcd", "state": "link", "src": "/opt/etcd/v3.5.30/etcd"},
        {"path": "/usr/local/bin/etcdctl", "state": "link", "src": "/opt/etcd/v3.5.30/etcdctl"},
    ]


def test_a_rotation_time_becomes_the_not_before_of_a_certificate_signed_then():
    assert filters.etcd_backdated_not_before("2026-11-25T01:00:00Z") == "20261125005500Z"
    assert filters.etcd_backdated_not_before("2026-11-25T03:00:00+02:00") == "20261125005500Z"
    with pytest.raises(AnsibleFilterError, match="no time zone"):
        filters.etcd_backdated_not_before("2026-11-25T01:00:00")
