"""The renderer emits only keys each etcd version knows, and the settings etcd would refuse are caught."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_config
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import parse_version

FLAGS = Path(__file__).resolve().parents[1] / "reference" / "etcd-flags"

# Keys the renderer only emits from a given patch release on.
GATED = {
    "tls-min-version": {"3.4": 25, "3.5": 8},
    "experimental-compact-hash-check-enabled": {"3.5": 5},
}


def lines(name: str) -> set[str]:
    return {line.strip() for line in (FLAGS / name).read_text().splitlines() if line.strip()}


def settings(**overrides):
    base = {
        "name": "m1",
        "address": "10.0.0.1",
        "client_port": 2379,
        "peer_port": 2380,
        "data_dir": "/var/lib/etcd",
        "pki_dir": "/etc/etcd/pki",
        "initial_cluster": "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m3=https://10.0.0.3:2380",
        "initial_cluster_token": "lab",
        "initial_cluster_state": "new",
        "heartbeat_interval": 100,
        "election_timeout": 1000,
    }
    base.update(overrides)
    return base


# (version rendered, config-key list, flag list) — exact lists where they exist,
# otherwise the nearest later patch of the same minor.
MATRIX = [
    ("3.4.23", "config-file-keys-3.4.23.txt", "flags-3.4.23.txt"),
    ("3.5.0", "config-file-keys-3.5.0.txt", "flags-3.5.0.txt"),
    ("3.5.1", "config-file-keys-3.5.0.txt", "flags-3.5.1.txt"),
    ("3.5.16", "config-file-keys-3.5.33.txt", "flags-3.5.33.txt"),
    ("3.5.30", "config-file-keys-3.5.33.txt", "flags-3.5.33.txt"),
    ("3.5.33", "config-file-keys-3.5.33.txt", "flags-3.5.33.txt"),
    ("3.6.0", "config-file-keys-3.6.0.txt", "flags-3.6.0.txt"),
    ("3.6.14", "config-file-keys-3.6.0.txt", "flags-3.6.14.txt"),
]


@pytest.mark.parametrize("version,keys_file,flags_file", MATRIX)
def test_every_emitted_key_exists_in_that_version(version, keys_file, flags_file):
    config = etcd_config.render(settings(listen_metrics_urls=["http://127.0.0.1:2381"], peer_allowed_cn="etcd-peer"),
                                version)
    known = lines(keys_file)
    missing = [key for key in etcd_config.emitted_keys(config) if key not in known]
    assert missing == [], "etcd %s has no config key(s) %s" % (version, missing)


@pytest.mark.parametrize("version,keys_file,flags_file", MATRIX)
def test_every_top_level_key_is_also_a_flag_of_that_version(version, keys_file, flags_file):
    flags = lines(flags_file)
    config = etcd_config.render(settings(), version)
    for key, value in config.items():
        if key.endswith("-transport-security"):
            prefix = "peer-" if key.startswith("peer") else ""
            for inner in value:
                assert "--" + prefix + inner in flags, (version, key, inner)
        else:
            assert "--" + key in flags, (version, key)


@pytest.mark.parametrize("version", ["3.4.23", "3.5.0", "3.5.1"])
def test_gated_keys_absent_before_their_release(version):
    config = etcd_config.render(settings(), version)
    parsed = parse_version(version)
    for key, gates in GATED.items():
        gate = gates.get(parsed.minor_line)
        if gate is not None and parsed.patch < gate:
            assert key not in config


def test_tls_and_mtls_everywhere():
    config = etcd_config.render(settings(), "3.5.30")
    for block in ("client-transport-security", "peer-transport-security"):
        assert config[block]["client-cert-auth"] is True
        assert config[block]["trusted-ca-file"] == "/etc/etcd/pki/ca.crt"
    urls = [config[k] for k in ("listen-peer-urls", "listen-client-urls", "advertise-client-urls",
                                "initial-advertise-peer-urls", "initial-cluster")]
    assert all("http://" not in url for url in urls)
    assert config["listen-client-urls"] == "https://10.0.0.1:2379,https://127.0.0.1:2379"
    assert config["tls-min-version"] == "TLS1.2"
    assert "enable-v2" not in config


def test_version_specific_defaults():
    assert etcd_config.render(settings(), "3.5.30")["snapshot-count"] == 100000
    assert etcd_config.render(settings(), "3.6.0")["snapshot-count"] == 10000
    assert etcd_config.render(settings(snapshot_count=5000), "3.6.0")["snapshot-count"] == 5000
    assert "feature-gates" in etcd_config.render(settings(), "3.6.0")
    assert "experimental-initial-corrupt-check" not in etcd_config.render(settings(), "3.6.0")
    assert etcd_config.render(settings(), "3.4.23")["pre-vote"] is True


def test_extra_keys_merge_last_and_ipv6_is_bracketed():
    config = etcd_config.render(settings(address="fd00::1", extra={"max-request-bytes": 2097152}), "3.5.30")
    assert config["max-request-bytes"] == 2097152
    assert config["advertise-client-urls"] == "https://[fd00::1]:2379"


@pytest.mark.parametrize("version", ["3.4.23", "3.5.30", "3.6.0"])
def test_every_key_the_renderer_writes_is_protected_from_extra(version):
    full = settings(wal_dir="/var/lib/etcd-wal", listen_metrics_urls=["https://10.0.0.1:2381"],
                    cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])
    assert set(etcd_config.render(full, version)) <= etcd_config.MANAGED_KEYS


@pytest.mark.parametrize("extra, words", [
    ({"client-transport-security": {"client-cert-auth": False}}, ["'client-transport-security'", "roles manage"]),
    ({"log-level": "debug"}, ["'log-level'", "use the role's own variable"]),
    ({"auto-tls": True}, ["'auto-tls'", "switch transport security off"]),
    ({"listen-client-http-urls": "http://0.0.0.0:2382"}, ["'listen-client-http-urls'", "switch transport security off"]),
    ({"some-new-flag": "http://10.0.0.1:9999"}, ["'some-new-flag'", "mutual TLS on every port is not optional"]),
])
def test_extra_keys_that_override_or_weaken_tls_are_refused(extra, words):
    problems = etcd_config.extra_problems(extra)
    assert len(problems) == 1 and all(w in problems[0] for w in words), problems
    with pytest.raises(ValueError):
        etcd_config.render(settings(extra=extra), "3.5.30")


def test_initial_cluster_is_identical_and_ordered():
    members = [{"name": "a", "address": "10.0.0.1"}, {"name": "b", "address": "10.0.0.2"}]
    assert etcd_config.initial_cluster(members) == "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"


@pytest.mark.parametrize(
    "heartbeat,election,ok",
    [(100, 1000, True), (100, 500, True), (100, 499, False), (0, 1000, False), (10000, 50001, False),
     (10000, 50000, True)],
)
def test_timing_rules_match_etcd_startup_checks(heartbeat, election, ok):
    assert (etcd_config.timing_problems(heartbeat, election) == []) is ok


def test_peers_can_be_reached_through_a_relay():
    members = [{"name": "a", "address": "10.0.0.1", "peer_url": "https://10.9.9.9:12380"},
               {"name": "b", "address": "10.0.0.2", "peer_url": ""}]
    assert etcd_config.initial_cluster(members) == "a=https://10.9.9.9:12380,b=https://10.0.0.2:2380"
    config = etcd_config.render(settings(advertise_peer_url="https://10.9.9.9:12380"), "3.5.30")
    assert config["initial-advertise-peer-urls"] == "https://10.9.9.9:12380"
    # etcd still listens on its own address; only what peers dial changes.
    assert config["listen-peer-urls"] == "https://10.0.0.1:2380"
    with pytest.raises(ValueError, match="https"):
        etcd_config.render(settings(advertise_peer_url="http://10.9.9.9:12380"), "3.5.30")


def test_running_timeouts_read_back_what_render_wrote():
    text = "name: m1\nheartbeat-interval: 150\nelection-timeout: 4500\nlisten-peer-urls: https://10.0.0.1:2380\n"
    assert etcd_config.running_timeouts(text) == {"heartbeat_interval": 150, "election_timeout": 4500}


@pytest.mark.parametrize("text", ["", "heartbeat-interval: '100'\n", "election-timeout:\n", "# heartbeat-interval: 100\n"])
def test_running_timeouts_ignore_what_the_toolkit_did_not_write(text):
    assert etcd_config.running_timeouts(text) == {}


@pytest.mark.parametrize("version, expected", [
    ("3.4.23", None), ("3.5.1", None), ("3.5.13", None), ("3.5.14", "etcd-peer"),
    ("3.5.15", ["etcd-peer"]), ("3.5.30", ["etcd-peer"]), ("3.6.0", ["etcd-peer"]),
])
def test_peer_port_accepts_the_member_cn_only_where_the_file_can_say_so(version, expected):
    # 3.5.16 and 3.5.30 refuse a string here ("cannot unmarshal string ... of type []string"),
    # checked by starting both binaries; 3.4 and 3.5.0-3.5.13 have no such key in the file.
    peer = etcd_config.render(settings(peer_allowed_cn="etcd-peer"), version)["peer-transport-security"]
    assert peer.get("allowed-cn") == expected
    assert "allowed-cn" not in etcd_config.render(settings(), version)["client-transport-security"]


@pytest.mark.parametrize("version, tls_min, suites, key_type, words", [
    ("3.5.30", "TLS1.3", ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], "ECC", ["cannot be set with etcd_tls_min_version TLS1.3"]),
    ("3.5.30", "TLS1.2", ["TLS_AES_128_GCM_SHA256"], "ECC", ["TLS 1.3 suites TLS_AES_128_GCM_SHA256, which cannot be chosen"]),
    ("3.4.23", "TLS1.2", ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM"], "ECC", ["does not know: TLS_ECDHE_ECDSA_WITH_AES_128_GCM"]),
    ("3.5.30", "TLS1.2", ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], "ECC", ["no suite for the ECC keys", "ECDSA suite"]),
    ("3.5.30", "TLS1.2", ["TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"], "ECC", ["broken ciphers"]),
    ("3.5.1", "TLS1.3", [], "ECC", ["needs etcd 3.4.25+, 3.5.8+ or 3.6"]),
    ("3.5.30", "TLS1.1", [], "ECC", ["is not TLS1.2 or TLS1.3"]),
])
def test_tls_settings_etcd_refuses_are_caught(version, tls_min, suites, key_type, words):
    problems = etcd_config.tls_problems(version, tls_min, suites, key_type)
    assert problems and all(any(w in p for p in problems) for w in words), problems


@pytest.mark.parametrize("version, tls_min, suites, key_type", [
    ("3.5.30", "TLS1.2", [], "ECC"),
    ("3.5.30", "TLS1.3", [], "ECC"),
    ("3.5.30", "TLS1.2", ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], "ECC"),
    ("3.5.30", "TLS1.2", ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"], "RSA"),
    ("3.4.23", "TLS1.2", ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"], "ECC"),
    ("3.4.23", "TLS1.2", ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"], "ECC"),
])
def test_good_tls_settings_pass(version, tls_min, suites, key_type):
    assert etcd_config.tls_problems(version, tls_min, suites, key_type) == []
