"""Version rules: what is deployable, what is advised against, and feature gates."""
from __future__ import annotations

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_versions as v


@pytest.mark.parametrize("text", ["3.4.23", "3.5.0", "3.5.30", "3.6.14"])
def test_supported_versions_have_no_problem(text):
    assert v.version_problem(text) is None


@pytest.mark.parametrize("text,words", [
    ("3.3.27", "3.4, 3.5 and 3.6 only"),
    ("3.7.0", "not supported"),
    ("latest", "3.MINOR.PATCH"),
    ("3.5", "3.MINOR.PATCH"),
    ("", "3.MINOR.PATCH"),
    ("v3.6.14", "set it to 3.6.14"),
    ("3.5.030", "set it to 3.5.30"),
    (" 3.5.30", "set it to 3.5.30"),
])
def test_unknown_versions_are_refused_with_a_fix(text, words):
    problem = v.version_problem(text)
    assert problem is not None and words in problem
    # Every refusal says what to set instead.
    assert "etcd_version" in problem or "for example 3.5.30" in problem


def test_test_only_versions_warn():
    assert any("not for production" in w for w in v.version_warnings("3.5.1"))
    assert v.version_warnings("3.5.30") == []
    assert any("allowed-cn arrived in 3.5.14" in w for w in v.version_warnings("3.5.13"))
    assert not any("allowed-cn" in w for w in v.version_warnings("3.5.14"))
    assert any("end of life" in w for w in v.version_warnings("3.4.23"))


def test_feature_gates():
    p = v.parse_version
    assert not v.supports_tls_min_version(p("3.4.23"))
    assert v.supports_tls_min_version(p("3.4.25"))
    assert not v.supports_tls_min_version(p("3.5.1"))
    assert v.supports_tls_min_version(p("3.5.8"))
    assert v.supports_tls_min_version(p("3.6.0"))
    assert not v.has_etcdutl(p("3.4.23")) and v.has_etcdutl(p("3.5.0"))
    assert not v.has_livez(p("3.5.10")) and v.has_livez(p("3.5.11")) and v.has_livez(p("3.4.29"))


def test_arch_mapping():
    assert v.arch_for("x86_64") == "amd64"
    assert v.arch_for("aarch64") == "arm64"
    with pytest.raises(ValueError, match="no official etcd release"):
        v.arch_for("sparc64")


def test_tarball_name_matches_upstream():
    assert v.tarball_name(v.parse_version("3.5.30"), "amd64") == "etcd-v3.5.30-linux-amd64.tar.gz"


def test_installed_version_is_read_from_etcd_version_output():
    out_35 = "etcd Version: 3.5.30\nGit SHA: Not provided (use ./build instead of go build)\nGo Version: go1.24\n"
    out_34 = "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\nGo OS/Arch: linux/amd64\n"
    assert v.installed_version_from_output(out_35) == "3.5.30"
    assert v.installed_version_from_output(out_34) == "3.4.23"
    assert v.installed_version_from_output("") == ""
