"""The converged cluster: three healthy voting members with mTLS on every link."""
from __future__ import annotations

import re

from conftest import MEMBERS, etcdctl, json_of

# The etcd members only (the scenario also has a Prometheus host).
testinfra_hosts = sorted(MEMBERS)


def test_service_active_enabled_and_running_as_etcd(host):
    service = host.service("etcd")
    assert service.is_running and service.is_enabled
    users = host.check_output("ps -o user= -C etcd").split()
    assert users and set(users) == {"etcd"}


def test_etcdctl_works_with_no_flags_for_an_operator(host):
    out = etcdctl(host, "endpoint status").stdout
    assert re.search(r"https://172\.31\.241\.1\d:2379, [0-9a-f]+, 3\.5\.30", out)


def test_three_voting_started_members(host):
    members = json_of(host, "member list")["members"]
    assert len(members) == 3
    assert all(not m.get("isLearner") for m in members)
    assert sorted(m["name"] for m in members) == ["m1", "m2", "m3"]
    assert all(u.startswith("https://") for m in members for u in m["peerURLs"] + m["clientURLs"])


def test_exactly_one_leader_agreed_by_all(host):
    statuses = json_of(host, "endpoint status --cluster")
    assert len(statuses) == 3
    leaders = {s["Status"]["leader"] for s in statuses}
    assert len(leaders) == 1
    leader = leaders.pop()
    assert sum(1 for s in statuses if s["Status"]["header"]["member_id"] == leader) == 1


def test_write_through_another_member_reads_linearizably_here(host):
    me = host.backend.get_hostname()
    other = {"m1": "m2", "m2": "m3", "m3": "m1"}[me]
    key = "/verify/written-via-%s-read-on-%s" % (other, me)
    etcdctl(host, "--endpoints=https://%s:2379 put %s ok" % (MEMBERS[other], key))
    # Default consistency of get is linearizable: it goes through the leader's read index.
    out = etcdctl(host, "--endpoints=https://%s:2379 get %s --print-value-only" % (MEMBERS[me], key))
    assert out.stdout.strip() == "ok"


def test_plaintext_clients_are_refused(host):
    assert host.run("curl -sS -m 5 http://127.0.0.1:2379/version").rc != 0
    assert host.run("curl -sS -m 5 http://127.0.0.1:2380/version").rc != 0
    plain = etcdctl(host, "--endpoints=http://127.0.0.1:2379 --dial-timeout=3s get /x", check=False)
    assert plain.rc != 0


def test_tls_client_without_certificate_is_refused(host):
    cmd = host.run("sudo curl -sS -m 5 --cacert /etc/etcd/pki/ca.crt https://127.0.0.1:2379/version")
    assert cmd.rc != 0
    # Positive control: the same call with the admin certificate succeeds.
    ok = host.run(
        "sudo curl -sS -m 5 --cacert /etc/etcd/pki/ca.crt --cert /etc/etcd/pki/admin.crt "
        "--key /etc/etcd/pki/admin.key https://127.0.0.1:2379/version"
    )
    assert ok.rc == 0 and '"etcdserver":"3.5.30"' in ok.stdout


def test_private_keys_are_0600_and_data_dir_0700(host):
    for name, owner in (("server", "etcd"), ("peer", "etcd"), ("admin", "root")):
        key = host.file("/etc/etcd/pki/%s.key" % name)
        assert key.exists and key.mode == 0o600 and key.user == owner, name
    data = host.file("/var/lib/etcd")
    assert data.mode == 0o700 and data.user == "etcd"
    env = host.file("/etc/etcd/etcdctl.env")
    assert env.mode == 0o600 and env.user == "root"


def test_no_ca_private_key_on_the_member(host, ca_key_digest):
    assert host.run("sudo find / -xdev -name 'ca.key' -print -quit").stdout.strip() == ""
    digests = host.run(
        "sudo find /etc /opt /var /root /home /tmp /usr/local -xdev -type f -size -64k -exec sha256sum {} +"
    ).stdout
    assert ca_key_digest not in digests


def test_no_plaintext_listener(host):
    config = host.file("/etc/etcd/etcd.conf.yml").content_string
    assert "http://" not in config
    assert "client-cert-auth: true" in config
    # Only sshd and Docker's embedded DNS (127.0.0.11) listen besides etcd's TLS client, peer
    # and metrics ports and node_exporter's TLS port.
    listening = host.check_output("ss -Htln")
    ports = sorted({port for addr, port in re.findall(r"(\S+):(\d+)\s", listening)
                    if port != "22" and addr != "127.0.0.11"})
    assert ports == ["2379", "2380", "2381", "9100"]
    # Both metrics listeners want a client certificate from the cluster CA.
    address = MEMBERS[host.backend.get_hostname()]
    for port in (2381, 9100):
        bare = host.run("curl -sS -m 5 --cacert /etc/etcd/pki/ca.crt https://%s:%d/metrics" % (address, port))
        assert bare.rc != 0, "port %d served metrics without a client certificate" % port
        plain = host.run("curl -sS -m 5 http://%s:%d/metrics" % (address, port))
        assert plain.rc != 0 or "etcd_" not in plain.stdout, "port %d served plain HTTP" % port
