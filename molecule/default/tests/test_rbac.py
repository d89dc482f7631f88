"""With auth on, each certificate acts only as the etcd user its CN names, and only member
peer certificates are taken on the peer port. Real certificates, real etcdctl, real curl."""
from __future__ import annotations

import os
import subprocess

import pytest

import harness
from harness import PROJECT, run_site
from test_refusals import ALL

from conftest import MEMBERS

ENDPOINT = "https://%s:2379" % MEMBERS["m1"]
MON = "172.31.241.20"
APPS = ("inventory", "billing")  # declared in the scenario's group_vars (etcd_rbac_applications)
# Where each identity's files live on which host, as the roles put them.
IDENTITIES = {
    "admin": ("m1", "/etc/etcd/pki", "admin"),
    "backup": ("m1", "/etc/etcd-backup/pki", "backup"),
    "monitoring": (MON, "/etc/prometheus/etcd-pki", "prometheus"),
    "application": ("m2", "/etc/etcd-client/inventory", "inventory"),
}


def as_app(name: str, args: str) -> subprocess.CompletedProcess:
    """etcdctl on m2 with the application's own certificate, issued by client-cert.yml."""
    folder = "/etc/etcd-client/%s" % name
    return harness.ssh("m2", "sudo env -u ETCDCTL_ENDPOINTS etcdctl --endpoints=%s --cacert %s/ca.crt --cert %s/%s.crt "
                       "--key %s/%s.key %s" % (ENDPOINT, folder, folder, name, folder, name, args), check=False)


@pytest.fixture(scope="module")
def app_certificates(tmp_path_factory):
    for name in APPS:
        issued = run_site(tmp_path_factory.mktemp(name), ALL, "-e", "etcd_client_name=" + name,
                          "-e", "etcd_client_host=m2", playbook="client_cert")
        assert issued.returncode == 0, (issued.stdout + issued.stderr)[-3000:]
    return APPS


def test_authentication_is_on():
    assert "Authentication Status: true" in harness.ssh("m1", "sudo -i etcdctl auth status").stdout


def test_client_cert_playbook_refuses_the_admin_identity_and_changes_nothing(tmp_path):
    before = harness.ssh("m2", "sudo ls -R /etc/etcd-client 2>&1", check=False).stdout
    refused = run_site(tmp_path, ALL, "-e", "etcd_client_name=root", "-e", "etcd_client_host=m2",
                       playbook="client_cert")
    output = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0
    assert "etcd_client_name 'root' must name an application declared in etcd_rbac_applications" in output
    assert harness.ssh("m2", "sudo ls -R /etc/etcd-client 2>&1", check=False).stdout == before


def test_client_cert_playbook_refuses_an_application_named_like_a_toolkit_identity(tmp_path):
    before = harness.ssh("m2", "sudo ls -R /etc/etcd-client 2>&1", check=False).stdout
    refused = run_site(tmp_path, ALL, "-e", '{"etcd_rbac_applications": [{"name": "etcd-peer", "prefixes": ["/x/"]}]}',
                       "-e", "etcd_client_name=etcd-peer", "-e", "etcd_client_host=m2", playbook="client_cert")
    output = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0
    assert "('etcd-peer'): etcd-peer is the toolkit's own identity" in output, output[-3000:]
    assert harness.ssh("m2", "sudo ls -R /etc/etcd-client 2>&1", check=False).stdout == before


def test_each_application_reaches_only_its_own_prefixes(app_certificates):
    assert as_app("inventory", "put /inventory/widgets 7").returncode == 0
    assert as_app("billing", "put /billing/invoice-1 paid").returncode == 0
    # billing may read inventory (declared read) but not write it.
    assert "7" in as_app("billing", "get /inventory/widgets --print-value-only").stdout
    denied = [
        as_app("billing", "put /inventory/widgets 0"),
        as_app("inventory", "get /billing/invoice-1"),
        as_app("inventory", "get / --prefix --keys-only"),
        as_app("inventory", "snapshot save /tmp/inventory-snapshot.db"),
    ]
    for result in denied:
        assert result.returncode != 0 and "permission denied" in result.stderr, result
    # The writes that were refused did not happen.
    assert "7" in harness.ssh("m1", "sudo -i etcdctl get /inventory/widgets --print-value-only").stdout


def test_the_monitoring_certificate_reads_no_key(tmp_path):
    """Prometheus's own certificate, taken from the monitoring host, with the controller's etcdctl."""
    for suffix in ("crt", "key"):
        data = harness.ssh(MON, "sudo cat /etc/prometheus/etcd-pki/prometheus.%s" % suffix).stdout
        (tmp_path / ("prometheus." + suffix)).write_text(data)
    os.chmod(tmp_path / "prometheus.key", 0o600)
    etcdctl = next((PROJECT / ".cache" / "releases").glob("v3.5.30/*/etcdctl"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    run = subprocess.run(
        [str(etcdctl), "--endpoints=" + ENDPOINT, "--cacert", str(harness.PKI / "ca.crt"),
         "--cert", str(tmp_path / "prometheus.crt"), "--key", str(tmp_path / "prometheus.key"),
         "get", "/", "--prefix", "--keys-only"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode != 0 and "permission denied" in run.stderr, run
    # It still scrapes: /metrics is outside RBAC.
    metrics = harness.ssh(MON, "sudo curl -sS --cacert /etc/prometheus/etcd-pki/ca.crt "
                               "--cert /etc/prometheus/etcd-pki/prometheus.crt --key /etc/prometheus/etcd-pki/prometheus.key "
                               "https://%s:2381/metrics" % MEMBERS["m1"]).stdout
    assert "etcd_server_has_leader" in metrics


def test_status_report_still_works(tmp_path):
    status = run_site(tmp_path, ALL, playbook="status")
    assert status.returncode == 0 and "health:   HEALTHY" in status.stdout, (status.stdout + status.stderr)[-3000:]


@pytest.mark.parametrize("identity", sorted(IDENTITIES))
def test_only_member_peer_certificates_are_taken_on_the_peer_port(identity, app_certificates):
    host, folder, name = IDENTITIES[identity]
    target = MEMBERS["m3"]
    curl = ("sudo curl -sS --http1.1 --max-time 10 --cacert {d}/ca.crt --cert {d}/{n}.crt --key {d}/{n}.key "
            "https://{t}:2380/version")
    # Controls: from the same host the same certificate is taken on the client port (files,
    # network and curl are fine), and a member's peer certificate is taken on the peer port.
    client = harness.ssh(host, curl.format(d=folder, n=name, t=target).replace(":2380/", ":2379/"), check=False)
    assert client.returncode == 0 and '"etcdserver"' in client.stdout, client
    peer_host = host if host in MEMBERS else "m1"
    accepted = harness.ssh(peer_host, curl.format(d="/etc/etcd/pki", n="peer", t=target), check=False)
    assert accepted.returncode == 0 and '"etcdserver"' in accepted.stdout, accepted
    refused = harness.ssh(host, curl.format(d=folder, n=name, t=target), check=False)
    # 35/55/56: the TLS handshake or its first read failed (the server refused the certificate).
    assert refused.returncode in (35, 55, 56) and "etcdserver" not in refused.stdout, refused


def test_peer_certificates_carry_the_shared_member_cn():
    read_cn = ("sudo python3 -c \"from cryptography import x509; c = x509.load_pem_x509_certificate("
               "open('/etc/etcd/pki/peer.crt', 'rb').read()); print(c.subject.rfc4514_string())\"")
    for member in MEMBERS:
        assert harness.ssh(member, read_cn).stdout.strip() == "CN=etcd-peer"
