"""The PKI rules: the CA is never replaced, and a certificate is signed again exactly when it must be."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from pathlib import Path

import pytest

from conftest import load_plugin

pki = load_plugin("module_utils/etcd_pki.py")
ca_action = load_plugin("action/etcd_ca.py")

PASS = "correct horse battery staple"
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)


def ensure(folder: Path, check: bool = False, **over: object) -> dict:
    args = dict(dir=str(folder), passphrase=PASS, common_name="lab etcd CA", valid_days=3650,
                admin_common_name="root", cert_valid_days=365, renew_days=30, ca_warn_days=180, member_cas={},
                key_type="ECC", key_curve="secp256r1")
    args.update(over)
    return ca_action.ActionModule._ensure(None, args, check)


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def ca(tmp_path):
    key = pki.new_key("ECC")
    cert = pki.x509.load_pem_x509_certificate(pki.self_sign_ca(key, "test CA", 3650, NOW).encode())
    return cert, key


def leaf(ca, want, key=None, days=365, now=NOW):
    key = key or pki.new_key("ECC")
    return pki.sign_leaf(pki.public_pem(key), want, ca[0], ca[1], days, now), pki.public_pem(key)


SERVER = pki.Want(name="server", cn="etcd-1", eku=["serverAuth", "clientAuth"],
                  sans=["DNS:etcd-1", "IP:10.0.0.1", "DNS:localhost"])


# --- the CA on the controller -------------------------------------------------------------

def test_a_new_ca_is_created_once_then_left_alone(tmp_path):
    folder = tmp_path / "pki"
    first = ensure(folder)
    assert first["changed"] and "create the CA key" in first["actions"]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {
        "ca.key": "0o600", "ca.crt": "0o644", "admin.key": "0o600", "admin.crt": "0o644"}
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert b"ENCRYPTED" in (folder / "ca.key").read_bytes()
    before = digest(folder)
    again = ensure(folder)
    assert not again["changed"] and digest(folder) == before
    assert 3640 < again["ca_days_left"] <= 3650


def test_check_mode_on_a_new_controller_writes_nothing(tmp_path):
    result = ensure(tmp_path / "pki", check=True)
    assert result["changed"] and not (tmp_path / "pki").exists()


def test_a_wrong_passphrase_is_refused_and_nothing_changes(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    before = digest(folder)
    with pytest.raises(pki.PkiError, match="passphrase .etcd_ca_passphrase. is wrong.*left as it is"):
        ensure(folder, passphrase="a mistyped passphrase!")
    assert digest(folder) == before


def test_a_missing_ca_key_beside_its_certificate_is_refused(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    (folder / "ca.key").unlink()
    before = digest(folder)
    with pytest.raises(pki.PkiError, match="Restore ca.key from the backup"):
        ensure(folder)
    assert digest(folder) == before


def test_a_ca_key_of_another_type_is_refused_not_replaced(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    before = digest(folder)
    with pytest.raises(pki.PkiError, match="is ECC/secp256r1.*never replaced"):
        ensure(folder, key_type="RSA")
    assert digest(folder) == before


def test_a_ca_certificate_of_another_key_is_refused(tmp_path):
    folder, other = tmp_path / "pki", tmp_path / "other"
    ensure(folder)
    ensure(other)
    os.replace(other / "ca.crt", folder / "ca.crt")
    with pytest.raises(pki.PkiError, match="does not belong to ca.key"):
        ensure(folder)


def test_a_lost_ca_certificate_is_made_again_from_the_same_key(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    key = (folder / "ca.key").read_bytes()
    (folder / "ca.crt").unlink()
    assert "self-sign the CA certificate" in ensure(folder)["actions"]
    assert (folder / "ca.key").read_bytes() == key


def test_a_ca_near_its_end_warns_and_an_expired_one_is_refused_with_the_renewal_step(tmp_path):
    folder = tmp_path / "pki"
    assert ensure(folder, valid_days=100)["warnings"][0].startswith("the CA certificate expires in 99 days")
    key = pki.load_key((folder / "ca.key").read_bytes(), PASS)
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    (folder / "ca.crt").write_text(pki.self_sign_ca(key, "lab etcd CA", 10, past))
    with pytest.raises(pki.PkiError, match="expired on .*move ca.crt aside"):
        ensure(folder)
    (folder / "ca.crt").rename(folder / "ca.crt.old")
    renewed = ensure(folder)
    assert "self-sign the CA certificate" in renewed["actions"] and renewed["ca_days_left"] >= 3649


def test_a_controller_without_the_ca_the_members_trust_is_refused(tmp_path):
    ensure(tmp_path / "cluster")
    trusted = (tmp_path / "cluster/ca.crt").read_text()
    with pytest.raises(pki.PkiError, match="m1, m3 already trust a CA, but .* holds none"):
        ensure(tmp_path / "empty", member_cas={"m1": trusted, "m2": "", "m3": trusted})
    assert not (tmp_path / "empty").exists()


def test_a_ca_other_than_the_members_is_refused_but_a_renewed_one_is_not(tmp_path):
    ensure(tmp_path / "cluster")
    ensure(tmp_path / "other")
    trusted = (tmp_path / "cluster/ca.crt").read_text()
    with pytest.raises(pki.PkiError, match="m2 trust another CA"):
        ensure(tmp_path / "other", member_cas={"m1": "", "m2": trusted})
    (tmp_path / "cluster/ca.crt").rename(tmp_path / "cluster/ca.crt.old")  # renewal: same key, new certificate
    assert not ensure(tmp_path / "cluster", check=True, member_cas={"m1": trusted})["ca_days_left"] < 3649


def test_a_lifetime_inside_the_renewal_window_or_past_the_ca_warns(tmp_path):
    assert ensure(tmp_path / "a", cert_valid_days=30)["warnings"] == [
        "etcd_pki_cert_valid_days (30) is not longer than etcd_pki_renew_days (30): this run signs every "
        "certificate again, and so will every run with these values (defaults 365 and 30)"]
    result = ensure(tmp_path / "b", valid_days=300, ca_warn_days=10)
    assert result["warnings"] == ["certificates are signed for 365 days but the CA expires in 299: they stop "
                                  "working with it; renew the CA (README: 'The CA')"]


def test_the_admin_certificate_is_renewed_inside_the_window_only(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    serial = (folder / "admin.crt").read_bytes()
    assert not ensure(folder, renew_days=30)["changed"]
    renewed = ensure(folder, renew_days=400)
    assert renewed["changed"] and (folder / "admin.crt").read_bytes() != serial


# --- leaf certificates --------------------------------------------------------------------

def test_a_fresh_certificate_needs_nothing(ca):
    cert, pub = leaf(ca, SERVER)
    assert pki.renewal_reasons(cert, SERVER, pub, ca[0], 30, NOW) == []


def test_subject_alt_names_compare_as_sets_of_normalised_entries(ca):
    cert, pub = leaf(ca, SERVER)
    reordered = pki.Want(name="server", cn="etcd-1", eku=["clientAuth", "serverAuth"],
                         sans=["dns:LOCALHOST", "IP:10.0.0.1", "DNS:etcd-1", "DNS:etcd-1"])
    assert pki.renewal_reasons(cert, reordered, pub, ca[0], 30, NOW) == []


@pytest.mark.parametrize("change, reason", [
    (dict(sans=["DNS:etcd-1", "IP:10.0.0.2", "DNS:localhost"]), "+IP:10.0.0.2, -IP:10.0.0.1"),
    (dict(cn="etcd-9"), "common name"),
    (dict(eku=["clientAuth"]), "extended key usage"),
])
def test_a_changed_request_is_signed_again(ca, change, reason):
    cert, pub = leaf(ca, SERVER)
    want = pki.Want(**{**SERVER.__dict__, **change})
    reasons = pki.renewal_reasons(cert, want, pub, ca[0], 30, NOW)
    assert len(reasons) == 1 and reason in reasons[0], reasons


def test_another_key_another_ca_and_the_renewal_window_are_reasons(ca):
    cert, pub = leaf(ca, SERVER, days=40)
    other_key = pki.public_pem(pki.new_key("ECC"))
    assert pki.renewal_reasons(cert, SERVER, other_key, ca[0], 30, NOW) == ["it does not match the private key"]
    other_ca = pki.x509.load_pem_x509_certificate(pki.self_sign_ca(pki.new_key("ECC"), "test CA", 10, NOW).encode())
    assert pki.renewal_reasons(cert, SERVER, pub, other_ca, 30, NOW) == ["it is not signed by the controller's CA"]
    assert pki.renewal_reasons(cert, SERVER, pub, ca[0], 30, NOW) == []
    assert "expires in 29 days" in pki.renewal_reasons(cert, SERVER, pub, ca[0], 30, NOW + dt.timedelta(days=11))[0]
    assert pki.renewal_reasons(None, SERVER, pub, ca[0], 30, NOW) == ["no certificate yet"]


def test_signed_certificates_carry_what_etcd_checks(ca):
    cert_pem, _ = leaf(ca, SERVER)
    cert = pki.x509.load_pem_x509_certificate(cert_pem.encode())
    assert pki.signed_by(cert, ca[0])
    assert sorted(pki.san_strings(cert)) == ["DNS:etcd-1", "DNS:localhost", "IP:10.0.0.1"]
    assert cert.extensions.get_extension_for_class(pki.x509.BasicConstraints).value.ca is False
    assert cert.not_valid_before_utc < NOW  # backdated for members whose clock lags


def test_an_rsa_ca_signs_and_verifies():
    key = pki.new_key("RSA")
    ca = pki.x509.load_pem_x509_certificate(pki.self_sign_ca(key, "rsa CA", 10, NOW).encode())
    cert, pub = leaf((ca, key), SERVER, key=pki.new_key("RSA"))
    assert pki.renewal_reasons(cert, SERVER, pub, ca, 30, NOW) == []


def test_bad_names_are_refused_with_the_format(ca):
    with pytest.raises(pki.PkiError, match="DNS:<name> or IP:<address>"):
        leaf(ca, pki.Want(name="x", cn="x", eku=["clientAuth"], sans=["etcd.example.com"]))


# --- rotation: etcd_pki_reissue_before ----------------------------------------------------

def test_a_certificate_issued_before_the_rotation_is_signed_again_and_one_from_it_is_not(ca):
    cert, pub = leaf(ca, SERVER, now=NOW)
    later = NOW + dt.timedelta(hours=1)
    reasons = pki.renewal_reasons(cert, SERVER, pub, ca[0], 30, later, reissue_before=later)
    assert reasons == ["it was issued 2026-11-25T00:00:00Z, before etcd_pki_reissue_before (2026-11-25T01:00:00Z)"]
    fresh, pub = leaf(ca, SERVER, now=later)  # what the rotation signs: backdated, yet not before it
    assert pki.renewal_reasons(fresh, SERVER, pub, ca[0], 30, later, reissue_before=later.replace(microsecond=900)) == []


def test_the_rotation_time_must_be_a_past_utc_time():
    assert pki.parse_instant("") is None
    assert pki.parse_instant("2026-11-25T01:00:00Z") == NOW + dt.timedelta(hours=1)
    assert pki.parse_instant("2026-11-25T03:00:00+02:00") == NOW + dt.timedelta(hours=1)
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for bad, words in [("yesterday", "not a time"), ("2026-11-25T01:00:00", "no time zone"),
                       ("2999-01-01T00:00:00Z", "in the future"), (soon, "in the future")]:
        with pytest.raises(pki.PkiError, match=words):
            pki.parse_instant(bad)


def test_the_admin_certificate_is_signed_again_by_a_rotation_once(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    first = (folder / "admin.crt").read_bytes()
    time.sleep(1.1)  # certificates carry whole seconds
    start = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ensure(folder, reissue_before=start)["changed"] and (folder / "admin.crt").read_bytes() != first
    assert not ensure(folder, reissue_before=start)["changed"]


# --- CA rotation: trust, sign, finish ------------------------------------------------------

def subjects(path: Path) -> list:
    return [pki.common_name(c) for c in pki.load_bundle(path.read_text())]


def signer(folder: Path):
    return pki.x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())


def record(folder: Path, name: str) -> Path:
    """A certificate this controller signed for a host (its record), from today's ca.crt."""
    key = pki.new_key("ECC")
    ca_key = pki.load_key((folder / "ca.key").read_bytes(), PASS)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pki.sign_leaf(pki.public_pem(key), SERVER, signer(folder), ca_key, 365))
    return path


def test_a_ca_rotation_runs_trust_sign_finish_and_each_phase_again_changes_nothing(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    old_ca, old_admin = (folder / "ca.crt").read_text(), (folder / "admin.crt").read_bytes()
    rec = record(folder, "members/m1/server.crt")

    planned = ensure(folder, check=True, rotation="trust")
    assert planned["changed"] and not (folder / "ca-next.key").exists() and planned["rotation_state"] == "trusting"
    trusted = ensure(folder, rotation="trust")
    assert trusted["changed"] and trusted["rotation_state"] == "trusting"
    assert subjects(folder / "ca-trust.crt") == ["lab etcd CA", subjects(folder / "ca-next.crt")[0]]
    assert b"ENCRYPTED" in (folder / "ca-next.key").read_bytes()
    assert (folder / "ca.crt").read_text() == old_ca and (folder / "admin.crt").read_bytes() == old_admin
    before = digest(folder)
    assert not ensure(folder, rotation="trust")["changed"] and digest(folder) == before
    # Without a phase the run keeps the bundle and says what comes next.
    assert any("continue it with" in w and "=sign" in w for w in ensure(folder)["warnings"])

    bundle = (folder / "ca-trust.crt").read_text()
    with pytest.raises(pki.PkiError, match="m2 do not trust the new CA yet: run .*=trust first"):
        ensure(folder, rotation="sign", member_cas={"m1": bundle, "m2": old_ca})
    assert digest(folder) == before
    signed = ensure(folder, rotation="sign", member_cas={"m1": bundle, "m2": bundle})
    assert signed["changed"] and signed["rotation_state"] == "signing"
    assert subjects(folder / "ca.crt") == subjects(folder / "ca-trust.crt")[1:]
    assert not (folder / "ca-next.key").exists() and not (folder / "ca-next.crt").exists()
    retired = sorted(p.name for p in (folder / "retired").iterdir())
    assert [p.rsplit(".", 1)[1] for p in retired] == ["crt", "key"] and (folder / "retired" / retired[0]).read_text() == old_ca
    assert pki.signed_by(pki.x509.load_pem_x509_certificate((folder / "admin.crt").read_bytes()), signer(folder))
    before = digest(folder)
    assert not ensure(folder, rotation="sign")["changed"] and digest(folder) == before

    with pytest.raises(pki.PkiError, match=r"still signed by the old CA: members/m1/server\.crt"):
        ensure(folder, rotation="finish")
    assert digest(folder) == before
    rec.unlink()
    record(folder, "members/m1/server.crt")
    finished = ensure(folder, rotation="finish")
    assert finished["changed"] and finished["rotation_state"] == "" and not (folder / "ca-trust.crt").exists()
    assert any(p.name.startswith("ca-trust-") for p in (folder / "retired").iterdir())
    assert not ensure(folder, rotation="finish")["changed"] and not ensure(folder)["warnings"]
    # Members that trust the bundle, or only the new CA, are this cluster's; the old CA alone is not.
    assert not ensure(folder, check=True, member_cas={"m1": bundle, "m2": (folder / "ca.crt").read_text()})["changed"]
    with pytest.raises(pki.PkiError, match="m3 trust another CA"):
        ensure(folder, check=True, member_cas={"m3": old_ca})


@pytest.mark.parametrize("first, phase, refusal", [
    (None, "sign", "no CA rotation is under way: run .*=trust first"),
    ("trust", "finish", "the new CA does not sign yet: run .*=sign first"),
    ("sign", "trust", "the new CA already signs .* the next phase is finish"),
])
def test_a_phase_out_of_order_is_refused_and_nothing_changes(tmp_path, first, phase, refusal):
    folder = tmp_path / "pki"
    ensure(folder)
    for step in {"trust": ["trust"], "sign": ["trust", "sign"]}.get(first, []):
        ensure(folder, rotation=step)
    before = digest(folder)
    with pytest.raises(pki.PkiError, match=refusal):
        ensure(folder, rotation=phase)
    assert digest(folder) == before


def test_finish_with_no_rotation_under_way_changes_nothing(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    before = digest(folder)
    assert not ensure(folder, rotation="finish")["changed"] and digest(folder) == before


def test_a_sign_run_stopped_between_its_two_moves_is_finished_by_running_sign_again(tmp_path):
    folder = tmp_path / "pki"
    ensure(folder)
    ensure(folder, rotation="trust")
    new_ca = (folder / "ca-next.crt").read_text()
    (folder / "ca-next.key").replace(folder / "ca.key")  # the first move done, the second not
    with pytest.raises(pki.PkiError, match="stopped half-way in its sign phase: run .*=sign again"):
        ensure(folder)
    resumed = ensure(folder, rotation="sign")
    assert resumed["changed"] and (folder / "ca.crt").read_text() == new_ca and resumed["rotation_state"] == "signing"
    assert not (folder / "ca-next.crt").exists()


def test_pem_bundles_split_into_their_certificates(ca):
    one = ca[0].public_bytes(pki.serialization.Encoding.PEM).decode()
    assert len(pki.split_pems(one + "\n" + one)) == 2 and pki.split_pems("") == []
    assert pki.strangers({"m1": one + one}, one) == [] and pki.lacking({"m1": "", "m2": one}, one) == ["m1"]
