"""The CA rotation (playbooks/rotate-certs.yml -e etcd_pki_ca_rotation=trust|sign|finish) on this
scenario's cluster, last (pytest runs this file after the leaf rotation's): 3.5.30, authentication
on, the aetcd writer as the application `writer` over every endpoint.

In file order: a phase out of order, an unknown one, or one given with a leaf rotation time is
refused and nothing changes; check mode changes nothing. Then the whole rotation under the writer's
load, with no acknowledged write lost in any phase (and not one failed attempt in sign, which
restarts nothing): trust (every member restarts once, one at a time, and
trusts the bundle; the writer's old CA file still works), the application gets the bundle; sign
(nothing restarts, every member serves a certificate from the new CA, and the writer's certificate
from before still connects); finish is refused while the writer's certificate is from the old CA;
the writer gets a new one; finish (members restart once more and trust the new CA only: the old
certificate is refused, the new one connects). Each phase run again changes nothing.
"""
from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
from conftest import MEMBERS, under_load

from harness import PKI, run_site, snapshot, ssh
from test_upgrade_then_rotate_certs import ALL, flat, rotate, served_serial, serials, started, writer_in

WRITER_CERT = "clients/writer@u1/writer.crt"


def phase(tmp_path, name: str, *extra: str) -> subprocess.CompletedProcess:
    return rotate(tmp_path, "-e", "etcd_pki_ca_rotation=%s" % name, *extra)


def controller() -> dict:
    return {str(p.relative_to(PKI)): hashlib.sha256(p.read_bytes()).hexdigest() for p in PKI.rglob("*") if p.is_file()}


def trusted() -> dict:
    """The subjects of each member's ca.crt, in order."""
    return {name: ssh(name, "sudo openssl crl2pkcs7 -nocrl -certfile /etc/etcd/pki/ca.crt | openssl pkcs7 -print_certs -noout"
                            " | sed -n 's/^subject=//p'").stdout.split("\n")[:-1] for name in MEMBERS}


def issuer(member: str) -> str:
    return ssh(member, "sudo openssl x509 -noout -issuer -in /etc/etcd/pki/server.crt").stdout.strip()


def unchanged(result: subprocess.CompletedProcess) -> bool:
    return not re.search(r"changed=[1-9]", result.stdout)


def issue_writer(tmp_path) -> subprocess.CompletedProcess:
    issued = run_site(tmp_path, ALL, "-e", "etcd_client_name=writer", "-e", "etcd_client_host=u1", playbook="client_cert")
    assert issued.returncode == 0, flat(issued)[-3000:]
    return issued


@pytest.mark.parametrize("extra, refusal", [
    (["-e", "etcd_pki_ca_rotation=sign"], "no CA rotation is under way: run .*=trust first"),
    (["-e", "etcd_pki_ca_rotation=finish-now"], "rotate the CA with -e etcd_pki_ca_rotation=trust, then sign"),
    (["-e", "etcd_pki_ca_rotation=trust", "-e", "etcd_pki_reissue_before=2026-01-01T00:00:00Z"], "one of the two, not both"),
])
def test_a_phase_out_of_order_unknown_or_mixed_with_a_leaf_rotation_is_refused(tmp_path, extra, refusal):
    before, pki_before = snapshot(), controller()
    refused = rotate(tmp_path, *extra)
    assert refused.returncode != 0 and re.search(refusal, flat(refused)), flat(refused)[-3000:]
    assert unchanged(refused) and snapshot() == before and controller() == pki_before


def test_check_mode_shows_the_trust_phase_and_changes_nothing(tmp_path):
    before, pki_before = snapshot(), controller()
    planned = phase(tmp_path, "trust", "--check", "--diff")
    assert planned.returncode == 0, flat(planned)[-3000:]
    assert "create the new CA key" in flat(planned), flat(planned)[-3000:]
    assert snapshot() == before and controller() == pki_before


def test_the_ca_is_rotated_under_load_with_no_failed_write(tmp_path):
    old_ca = trusted()["u1"]
    assert len(old_ca) == 1
    started_before, serials_before = started(), serials()

    # trust: a bundle everywhere, each member restarted once; the writer still trusts the old CA only.
    under_load(writer_in(tmp_path / "old"), lambda: phase(tmp_path / "trust", "trust"), no_failed_attempt=False)
    bundle = trusted()
    assert all(len(b) == 2 and b[0] == old_ca[0] for b in bundle.values()), bundle
    assert all(started()[m] != started_before[m] for m in MEMBERS)
    assert serials() == serials_before
    again = phase(tmp_path / "trust-again", "trust")
    assert again.returncode == 0 and unchanged(again), flat(again)[-3000:]

    # The application gets the bundle (its certificate stays: the old CA still signs).
    issue_writer(tmp_path / "bundle")
    bundled = writer_in(tmp_path / "bundled")
    assert (tmp_path / "bundled/writer.crt").read_text() == (tmp_path / "old/writer.crt").read_text()

    # sign: the new CA signs every member certificate again; no restart.
    after_trust = started()
    under_load(bundled, lambda: phase(tmp_path / "sign", "sign"), no_failed_attempt=True)
    assert started() == after_trust
    new_ca = bundle["u1"][1]
    for name in MEMBERS:
        assert new_ca in issuer(name), (name, issuer(name))
        assert served_serial(name) == serials()[name][0], name
    assert bundled.verify()["missing_count"] == 0  # the certificate from before still connects
    again = phase(tmp_path / "sign-again", "sign")
    assert again.returncode == 0 and unchanged(again), flat(again)[-3000:]

    # finish is refused while the writer's certificate comes from the old CA; nothing changes.
    before, pki_before = snapshot(), controller()
    refused = phase(tmp_path / "early", "finish")
    assert refused.returncode != 0 and "still signed by the old CA: %s" % WRITER_CERT in flat(refused), flat(refused)[-3000:]
    assert unchanged(refused) and snapshot() == before and controller() == pki_before

    # The application gets a certificate from the new CA; then finish under its load.
    issue_writer(tmp_path / "new")
    new = writer_in(tmp_path / "new-writer")
    assert (tmp_path / "new-writer/writer.crt").read_text() != (tmp_path / "old/writer.crt").read_text()
    after_sign = started()
    under_load(new, lambda: phase(tmp_path / "finish", "finish"), no_failed_attempt=False)
    assert all(t == [new_ca] for t in trusted().values()), trusted()
    assert all(started()[m] != after_sign[m] for m in MEMBERS)
    with pytest.raises(AssertionError, match="no endpoint answered"):
        bundled.verify()  # a certificate from the old CA is refused now
    again = phase(tmp_path / "finish-again", "finish")
    assert again.returncode == 0 and unchanged(again), flat(again)[-3000:]
    assert any(p.name.startswith("ca-trust-") for p in (PKI / "retired").iterdir())
