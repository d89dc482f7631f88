# -*- coding: utf-8 -*-
"""Render an etcd member's YAML configuration for its exact version.

etcd reads either a YAML file or flags, never both, so the whole member
configuration lives here. Keys differ between 3.4, 3.5 and 3.6; the unit
tests check every emitted key against each version's own key list.
"""
from __future__ import annotations

from typing import Any, Mapping

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import (
    Version,
    at_least,
    default_snapshot_count,
    parse_version,
    peer_allowed_cn_form,
    supports_tls_min_version,
)

MAX_ELECTION_MS = 50000


def _https(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):  # bare IPv6 literal
        host = "[%s]" % host
    return "https://%s:%d" % (host, port)


def peer_url(member: Mapping[str, Any], peer_port: int = 2380) -> str:
    """A member's advertised peer URL: its own peer_url (a proxy or relay in front of it) wins
    over its address."""
    return str(member.get("peer_url") or _https(str(member["address"]), int(member.get("peer_port", peer_port))))


def initial_cluster(members: list[Mapping[str, Any]], peer_port: int = 2380) -> str:
    """'name=https://addr:2380,...' in the given order; every member must render it identically."""
    return ",".join("%s=%s" % (m["name"], peer_url(m, peer_port)) for m in members)


def timing_problems(heartbeat_ms: int, election_ms: int) -> list[str]:
    """etcd refuses to start on these; catch them before any host changes."""
    problems = []
    if heartbeat_ms <= 0 or election_ms <= 0:
        problems.append("etcd_heartbeat_interval and etcd_election_timeout must be positive milliseconds")
    elif 5 * heartbeat_ms > election_ms:
        problems.append(
            "etcd_election_timeout (%d ms) must be at least 5 x etcd_heartbeat_interval (%d ms): "
            "raise the election timeout to %d or more" % (election_ms, heartbeat_ms, 5 * heartbeat_ms)
        )
    if election_ms > MAX_ELECTION_MS:
        problems.append(
            "etcd_election_timeout (%d ms) is above etcd's limit of %d ms" % (election_ms, MAX_ELECTION_MS)
        )
    return problems


# Cipher suite names etcd accepts for TLS 1.2 (Go's names, as its tlsutil table reads them).
_CIPHERS_ECDSA = ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                  "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
                  "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA")
_CIPHERS_RSA = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
                "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
                "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
                "TLS_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_RC4_128_SHA")
# Both spellings start etcd 3.4.23 and 3.5.30 (checked with the binaries).
_CHACHA = ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
           "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305")
# TLS 1.3 suites are always on in Go and cannot be chosen: listing them changes nothing.
_TLS13 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


def tls_problems(version_text: str, tls_min_version: str, cipher_suites: list[str], key_type: str) -> list[str]:
    """TLS settings etcd refuses at start, or that would start a member nobody can talk to."""
    version = parse_version(version_text)
    problems = []
    if tls_min_version not in ("TLS1.2", "TLS1.3"):
        problems.append("etcd_tls_min_version %r is not TLS1.2 or TLS1.3" % (tls_min_version,))
    elif tls_min_version == "TLS1.3" and not supports_tls_min_version(version):
        problems.append("etcd_tls_min_version TLS1.3 needs etcd 3.4.25+, 3.5.8+ or 3.6 (this is %s): keep TLS1.2 "
                        "or upgrade first" % (version,))
    suites = [str(c) for c in cipher_suites or []]
    if suites and tls_min_version == "TLS1.3":
        problems.append("etcd_cipher_suites cannot be set with etcd_tls_min_version TLS1.3 (etcd refuses to start: "
                        "TLS 1.3 suites are not configurable): empty the list or use TLS1.2")
    known = _CIPHERS_ECDSA + _CIPHERS_RSA + _CHACHA
    tls13 = [c for c in suites if c in _TLS13]
    if tls13:
        problems.append("etcd_cipher_suites lists TLS 1.3 suites %s, which cannot be chosen (Go always enables "
                        "them): remove them; the list only picks TLS 1.2 suites" % ", ".join(tls13))
    unknown = [c for c in suites if c not in known and c not in _TLS13]
    if unknown:
        problems.append("etcd_cipher_suites has names etcd does not know: %s (use Go's names, for example "
                        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)" % ", ".join(unknown))
    weak = [c for c in suites if "RC4" in c or "3DES" in c]
    if weak:
        problems.append("etcd_cipher_suites has broken ciphers %s: remove them" % ", ".join(weak))
    usable = [c for c in suites if ("_ECDSA_" in c) == (str(key_type).upper() == "ECC") and c in known]
    if suites and not unknown and not tls13 and not usable:
        problems.append("etcd_cipher_suites has no suite for the %s keys the certificates use (etcd_pki_key_type): "
                        "every TLS handshake would fail; add an %s suite" % (key_type, "ECDSA" if str(key_type).upper() == "ECC" else "RSA"))
    return problems


# Every key render() may write. etcd_config_extra is for the others only: an extra key that
# overrode one of these would silently undo what the roles check (identity, TLS, timing).
MANAGED_KEYS = frozenset({
    "name", "data-dir", "wal-dir", "listen-peer-urls", "listen-client-urls", "advertise-client-urls",
    "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-token", "initial-cluster-state",
    "heartbeat-interval", "election-timeout", "snapshot-count", "quota-backend-bytes", "auto-compaction-mode",
    "auto-compaction-retention", "strict-reconfig-check", "pre-vote", "logger", "log-outputs", "log-level",
    "metrics", "client-transport-security", "peer-transport-security", "listen-metrics-urls", "tls-min-version",
    "cipher-suites", "feature-gates", "experimental-initial-corrupt-check", "experimental-compact-hash-check-enabled",
})
# Not written by render(), but each would switch transport security off or weaken it.
INSECURE_KEYS = frozenset({"auto-tls", "peer-auto-tls", "self-signed-cert-validity", "client-cert-auth",
                           "peer-client-cert-auth", "tls-max-version", "listen-client-http-urls"})


def extra_problems(extra: Mapping[str, Any]) -> list[str]:
    """Keys of etcd_config_extra that would override a managed key or weaken TLS."""
    problems = []
    for key in sorted(extra or {}):
        if key in MANAGED_KEYS:
            problems.append("etcd_config_extra sets '%s', which the roles manage and check: use the role's own "
                            "variable for it (README, etcd_member) and remove it from etcd_config_extra" % key)
        elif key in INSECURE_KEYS or "http://" in str(extra[key]):
            problems.append("etcd_config_extra sets '%s' to %r, which would switch transport security off or weaken "
                            "it (mutual TLS on every port is not optional): remove it from etcd_config_extra"
                            % (key, extra[key]))
    return problems


def _tls_block(settings: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    pki = settings["pki_dir"]
    return {
        "cert-file": "%s/%s.crt" % (pki, prefix),
        "key-file": "%s/%s.key" % (pki, prefix),
        "trusted-ca-file": "%s/ca.crt" % pki,
        # mTLS everywhere: a client or peer without a certificate from our CA is refused.
        "client-cert-auth": True,
    }


def render(settings: Mapping[str, Any], version_text: str) -> dict[str, Any]:
    """Return the YAML configuration (as a dict) for one member.

    settings keys: name, address, client_port, peer_port, data_dir, pki_dir,
    advertise_peer_url (optional; a proxy or relay peers dial instead of address),
    initial_cluster, initial_cluster_token, initial_cluster_state,
    heartbeat_interval, election_timeout; optional: wal_dir, snapshot_count,
    quota_backend_bytes, auto_compaction_mode, auto_compaction_retention,
    tls_min_version, cipher_suites, log_level, listen_metrics_urls, metrics,
    peer_allowed_cn (the CN every member's peer certificate carries; where the version can say it),
    extra (dict merged last, for keys this renderer does not manage).
    """
    version: Version = parse_version(version_text)
    address = str(settings["address"])
    client_port = int(settings.get("client_port", 2379))
    peer_port = int(settings.get("peer_port", 2380))
    client_url = _https(address, client_port)
    peer_url = _https(address, peer_port)
    advertise_peer_url = settings.get("advertise_peer_url") or peer_url
    if not str(advertise_peer_url).startswith("https://"):
        raise ValueError("advertise_peer_url %r must be an https:// URL" % (advertise_peer_url,))
    listen_clients = [client_url]
    if address not in ("127.0.0.1", "localhost"):
        # Local etcdctl and health probes dial loopback; still TLS with client certs.
        listen_clients.append(_https("127.0.0.1", client_port))

    config: dict[str, Any] = {
        "name": settings["name"],
        "data-dir": settings["data_dir"],
        "listen-peer-urls": peer_url,
        "listen-client-urls": ",".join(listen_clients),
        "advertise-client-urls": client_url,
        "initial-advertise-peer-urls": advertise_peer_url,
        "initial-cluster": settings["initial_cluster"],
        "initial-cluster-token": settings["initial_cluster_token"],
        "initial-cluster-state": settings.get("initial_cluster_state", "new"),
        "heartbeat-interval": int(settings["heartbeat_interval"]),
        "election-timeout": int(settings["election_timeout"]),
        "snapshot-count": int(settings.get("snapshot_count") or default_snapshot_count(version)),
        "quota-backend-bytes": int(settings.get("quota_backend_bytes") or 2 * 1024**3),
        "auto-compaction-mode": settings.get("auto_compaction_mode") or "periodic",
        "auto-compaction-retention": str(settings.get("auto_compaction_retention") or "10h"),
        "strict-reconfig-check": True,
        # 3.4 defaults pre-vote to false; a rejoining partitioned member must not depose a healthy leader.
        "pre-vote": True,
        # 3.4 defaults to capnslog; zap to stderr gives the same structured journal lines everywhere.
        "logger": "zap",
        "log-outputs": ["stderr"],
        "log-level": settings.get("log_level") or "info",
        "metrics": settings.get("metrics") or "basic",
        "client-transport-security": _tls_block(settings, "server"),
        "peer-transport-security": _tls_block(settings, "peer"),
    }
    # Only member peer certificates (one shared CN) may connect to the peer port; admin,
    # backup, monitoring and application certificates come from the same CA and are refused.
    peer_cn = settings.get("peer_allowed_cn")
    form = peer_allowed_cn_form(version)
    if peer_cn and form:
        config["peer-transport-security"]["allowed-cn"] = [peer_cn] if form == "list" else peer_cn
    if settings.get("wal_dir"):
        config["wal-dir"] = settings["wal_dir"]
    if settings.get("listen_metrics_urls"):
        config["listen-metrics-urls"] = ",".join(settings["listen_metrics_urls"])
    if supports_tls_min_version(version):
        config["tls-min-version"] = settings.get("tls_min_version") or "TLS1.2"
    if settings.get("cipher_suites"):
        config["cipher-suites"] = list(settings["cipher_suites"])

    # Detect a corrupted member at start and between members at runtime.
    if at_least(version, "3.6", 0):
        config["feature-gates"] = "InitialCorruptCheck=true,CompactHashCheck=true"
    else:
        config["experimental-initial-corrupt-check"] = True
        if at_least(version, "3.5", 5):
            config["experimental-compact-hash-check-enabled"] = True

    problems = extra_problems(dict(settings.get("extra") or {}))
    if problems:
        raise ValueError("; ".join(problems))
    config.update(dict(settings.get("extra") or {}))
    return config


def emitted_keys(config: Mapping[str, Any]) -> list[str]:
    """Every key the file sets, nested transport-security keys included (for tests and diffs)."""
    keys = []
    for key, value in config.items():
        keys.append(key)
        if key.endswith("-transport-security") and isinstance(value, Mapping):
            keys.extend(value.keys())
    return keys


def running_timeouts(config_text: str) -> dict[str, int]:
    """heartbeat_interval / election_timeout (ms) from a member's etcd.conf.yml, where set.

    The toolkit writes both keys as plain `key: number` lines; anything else (no file, a
    hand-edited value) gives no entry, and tuning measures again.
    """
    found: dict[str, int] = {}
    for line in config_text.splitlines():
        key, sep, value = line.partition(":")
        name = {"heartbeat-interval": "heartbeat_interval", "election-timeout": "election_timeout"}.get(key.strip())
        if sep and name and value.strip().isdigit():
            found[name] = int(value.strip())
    return found
