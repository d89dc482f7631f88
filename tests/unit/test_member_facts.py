"""etcd_member_facts helpers: what a host already has, read without the package manager."""
from __future__ import annotations

import hashlib

from conftest import load_plugin

facts = load_plugin("modules/etcd_member_facts.py")

STATUS = """\
Package: fio
Status: deinstall ok config-files
Version: 3.33-3

Package: prometheus-node-exporter
Status: install ok installed
Priority: optional
Description: Prometheus exporter for machine metrics
 Status: not a field, a continuation line
Version: 1.5.0-1+b6
"""


def test_dpkg_versions_report_installed_packages_only(tmp_path):
    status = tmp_path / "status"
    status.write_text(STATUS)
    assert facts.dpkg_versions(["fio", "prometheus-node-exporter", "rclone"], str(status)) == {
        "fio": "", "prometheus-node-exporter": "1.5.0-1+b6", "rclone": ""}


def test_no_dpkg_database_means_unknown(tmp_path):
    assert facts.dpkg_versions(["fio"], str(tmp_path / "absent")) == {}


def test_sha256_of_a_file_and_of_a_missing_one(tmp_path):
    (tmp_path / "etcd").write_bytes(b"binary")
    assert facts.file_sha256(str(tmp_path / "etcd")) == hashlib.sha256(b"binary").hexdigest()
    assert facts.file_sha256(str(tmp_path / "nothing")) == ""
