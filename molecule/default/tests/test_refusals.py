"""Bad input is refused before any host changes; each refusal names the problem and the fix.

Runs the real provisioning playbook against the converged members with a broken
inventory or variable, then proves every member is byte-for-byte and process-for-process
as it was.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import time

import pytest


from harness import PKI, cluster_healthy, run_site, snapshot, ssh  # noqa: E402

ALL = {"m1": {}, "m2": {}, "m3": {}}

CASES = {
    "even member count": (
        {"m1": {}, "m2": {}}, [], ["2 members is an even count", "etcd_allow_even_members"]),
    "duplicate address": (
        {"m1": {}, "m2": {}, "m3": {"etcd_address": "172.31.241.12"}}, [],
        ["address 172.31.241.12 is shared by m2, m3", "own etcd_address"]),
    "address that is not the host's": (
        {"m1": {}, "m2": {}, "m3": {"etcd_address": "172.31.241.99"}}, [],
        ["host 'm3': etcd_address 172.31.241.99 is not an address of this host", "set etcd_address"]),
    "duplicate member name": (
        {"m1": {}, "m2": {}, "m3": {"etcd_member_name": "m2"}}, [],
        ["member name 'm2' is used by 2 hosts", "unique etcd_member_name"]),
    "member name that would break initial-cluster": (
        {"m1": {}, "m2": {}, "m3": {"etcd_member_name": "m3,m4=https://172.31.241.99:2380"}}, [],
        ["member name 'm3,m4=https://172.31.241.99:2380' cannot go into initial-cluster", "set etcd_member_name"]),
    "unknown etcd version": (
        ALL, ["-e", "etcd_version=3.9.1"], ["etcd 3.9.1 is not supported", "set etcd_version"]),
    "malformed etcd version": (
        ALL, ["-e", "etcd_version=latest"], ["'latest' is not of the form 3.MINOR.PATCH"]),
    "unknown architecture": (
        ALL, ["-e", "etcd_arch=sparc64"], ["architecture 'sparc64'", "set etcd_arch"]),
    "version change on a running cluster": (
        ALL, ["-e", "etcd_version=3.5.16"], ["already runs etcd 3.5.30 but etcd_version is 3.5.16",
                                             "upgrade playbook"]),
    "bad variable type": (
        ALL, ["-e", "etcd_client_port=not-a-port"], ["etcd_client_port", "int"]),
    "weak CA passphrase": (
        ALL, ["-e", "etcd_ca_passphrase=short"], ["etcd_ca_passphrase must be set to at least 16"]),
    "backup schedule systemd cannot parse": (
        ALL, ["-e", '{"etcd_backup_schedule": "every full moon"}'],
        ["every full moon", "is not a systemd calendar expression", "systemd-analyze calendar"]),
    "drill schedule systemd cannot parse": (
        ALL, ["-e", '{"etcd_drill_schedule": "every full moon"}'],
        ["On drill host mon: etcd_drill_schedule 'every full moon' is not a systemd calendar expression",
         "systemd-analyze calendar"], ["mon"]),
    "cluster name unfit for snapshot file names": (
        ALL, ["-e", '{"etcd_cluster_name": "prod eu"}'], ["names snapshot files", "rename it"]),
    "backup folder inside the etcd data dir": (
        ALL, ["-e", "etcd_backup_dir=/var/lib/etcd/backups"],
        ["is inside the etcd data dir", "choose a folder on another disk"]),
    "plain-HTTP metrics on a wildcard address": (
        ALL, ["-e", "etcd_metrics_scheme=http", "-e", "etcd_metrics_address=0.0.0.0"],
        ["etcd_metrics_scheme is http but etcd_metrics_address", "is not a private or loopback IP address",
         "use etcd_metrics_scheme: https"]),
    "CA passphrase that does not open the CA key": (
        ALL, ["-e", "etcd_ca_passphrase=not-the-passphrase-of-this-CA"],
        ["the passphrase (etcd_ca_passphrase) is wrong", "The key is left as it is"]),
    "controller without the CA the members trust": (
        ALL, ["-e", "etcd_pki_controller_dir=/nonexistent/pki"],
        ["m1, m2, m3 already trust a CA, but /nonexistent/pki holds none", "Restore the PKI folder"]),
    "controller CA other than the one the members trust": (
        ALL, ["-e", "etcd_pki_controller_dir={other_ca}"],
        ["m1, m2, m3 trust another CA than", "Point etcd_pki_controller_dir at the cluster's own folder"]),
    "peer port equal to the client port": (
        ALL, ["-e", "etcd_peer_port=2379"],
        ["etcd_peer_port (2379) is also etcd_client_port", "give each its own"]),
    "client port out of range": (
        ALL, ["-e", "etcd_client_port=70000"], ["etcd_client_port (70000) is not a TCP port", "1-65535"]),
    "node_exporter on etcd's metrics port": (
        ALL, ["-e", "etcd_node_exporter_port=2381"],
        ["etcd_node_exporter_port (2381) is also etcd_metrics_port", "give each its own"]),
    "etcd_config_extra switching client certificates off": (
        ALL, ["-e", '{"etcd_config_extra": {"client-transport-security": {"client-cert-auth": false}}}'],
        ["etcd_config_extra sets 'client-transport-security'", "use the role's own variable"]),
    "etcd_config_extra adding a plaintext listener": (
        ALL, ["-e", '{"etcd_config_extra": {"listen-client-http-urls": "http://0.0.0.0:2382"}}'],
        ["etcd_config_extra sets 'listen-client-http-urls'", "mutual TLS on every port is not optional"]),
    "data folder that is a system folder": (
        ALL, ["-e", "etcd_data_dir=/var/lib"], ["etcd_data_dir is /var/lib, a system folder"]),
    "PKI folder inside the data folder": (
        ALL, ["-e", "etcd_pki_dir=/var/lib/etcd/pki"],
        ["etcd_data_dir (/var/lib/etcd) and etcd_pki_dir (/var/lib/etcd/pki) overlap", "move one of them"]),
    "IPv6 address (not supported yet)": (
        {"m1": {}, "m2": {}, "m3": {"etcd_address": "fd00::13"}}, [],
        ["etcd_address fd00::13 is an IPv6 address", "set etcd_address to the host's IPv4 address"]),
    "version not written as the release names it": (
        ALL, ["-e", "etcd_version=v3.5.30"], ["etcd_version 'v3.5.30' is not written the way etcd names its releases",
                                            "set it to 3.5.30"]),
    "cipher suites with TLS 1.3 only": (
        ALL, ["-e", "etcd_tls_min_version=TLS1.3", "-e", '{"etcd_cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}'],
        ["etcd_cipher_suites cannot be set with etcd_tls_min_version TLS1.3", "empty the list"]),
    "cipher suites that fit no certificate key": (
        ALL, ["-e", '{"etcd_cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]}'],
        ["etcd_cipher_suites has no suite for the ECC keys", "add an ECDSA suite"]),
    "application user named like the admin": (
        ALL, ["-e", '{"etcd_rbac_applications": [{"name": "root", "prefixes": ["/x/"]}]}'],
        ["etcd_rbac_applications[0] ('root'): root is the toolkit's own identity", "pick another name"]),
    "unsafe raft timing": (
        ALL, ["-e", "etcd_heartbeat_interval=500", "-e", "etcd_election_timeout=1000"],
        ["must be at least 5 x etcd_heartbeat_interval", "2500"]),
}


def controller_pki() -> dict:
    return {str(p.relative_to(PKI)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(PKI.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> str:
    """Another cluster's PKI folder, opened by the same passphrase."""
    folder = tmp_path_factory.mktemp("another-cluster") / "pki"
    folder.mkdir(mode=0o700)
    passphrase = (PKI.parent / "ca-passphrase").read_text().split()[0]
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt"), "-days", "30",
                    "-subj", "/CN=another cluster etcd CA", "-passout", "pass:" + passphrase],
                   check=True, capture_output=True)
    return str(folder)


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_before_any_host_changes(case, tmp_path, request):
    hosts, extra, expected, *drill_hosts = CASES[case]
    if any("{other_ca}" in arg for arg in extra):
        extra = [arg.format(other_ca=request.getfixturevalue("other_ca")) for arg in extra]
    before, pki_before = snapshot(), controller_pki()
    result = run_site(tmp_path, hosts, *extra, drill_hosts=drill_hosts[0] if drill_hosts else ())
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    flat = " ".join(output.split())  # the YAML callback folds long messages
    for text in expected:
        assert text in flat, "refusal for %s should say %r:\n%s" % (case, text, output[-3000:])
    assert "changed=0" in output and not re.search(r"changed=[1-9]", output)
    assert snapshot() == before, "a refused run changed a host"
    assert controller_pki() == pki_before, "a refused run changed the controller's PKI folder"


def test_a_cluster_with_a_member_down_is_refused_until_a_run_repairs_that_member(tmp_path):
    ssh("m3", "sudo systemctl stop etcd")
    try:
        before, pki_before = snapshot(), controller_pki()
        refused = run_site(tmp_path / "a", ALL)
        flat = " ".join((refused.stdout + refused.stderr).split())
        assert refused.returncode != 0 and "m3 (m3): etcd is not running there" in flat, flat[-3000:]
        assert '"etcd_repair_members": ["m3"]' in flat
        assert snapshot() == before and controller_pki() == pki_before
        repaired = run_site(tmp_path / "b", ALL, "-e", '{"etcd_repair_members": ["m3"]}')
        assert repaired.returncode == 0, (repaired.stdout + repaired.stderr)[-3000:]
        assert cluster_healthy("m1")
    finally:
        ssh("m3", "sudo systemctl start etcd", check=False)
        deadline = time.time() + 120
        while not cluster_healthy("m1") and time.time() < deadline:
            time.sleep(2)


def test_a_member_that_runs_but_does_not_answer_is_refused_by_name(tmp_path):
    """Service state says active; only asking the cluster shows m3 is frozen."""
    ssh("m3", "sudo systemctl kill --signal=SIGSTOP etcd")
    try:
        before, pki_before = snapshot(), controller_pki()
        refused = run_site(tmp_path, ALL)
        flat = " ".join((refused.stdout + refused.stderr).split())
        assert refused.returncode != 0, flat[-3000:]
        assert "member m3 (https://172.31.241.13:2379) runs but is not healthy" in flat, flat[-3000:]
        assert "on m3: journalctl -u etcd says why; systemctl restart etcd" in flat
        assert not re.search(r"changed=[1-9]", refused.stdout)
        assert snapshot() == before and controller_pki() == pki_before
    finally:
        ssh("m3", "sudo systemctl kill --signal=SIGCONT etcd", check=False)
        deadline = time.time() + 120
        while not cluster_healthy("m1") and time.time() < deadline:
            time.sleep(2)
    assert cluster_healthy("m1")
