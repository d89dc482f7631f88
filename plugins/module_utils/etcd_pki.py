# -*- coding: utf-8 -*-
"""Certificate rules shared by the CA (controller) and certificate (host) plugins.

Keys are made where they live: the CA key on the controller, every member key on its
member. The controller decides from a host's public key and installed certificate whether
that certificate must be signed again, and signs it; the private key never travels.
Works with the cryptography releases of Debian 12 (38) and of the controller's venv.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # the plugins report it; see CRYPTOGRAPHY_ERROR
    CRYPTOGRAPHY_ERROR: Optional[str] = "the Python cryptography library is missing (pip install cryptography)"
else:
    CRYPTOGRAPHY_ERROR = None
    CURVES = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1}
    EKU = {"serverAuth": ExtendedKeyUsageOID.SERVER_AUTH, "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH}

EKU_NAMES = ["serverAuth", "clientAuth"]
# Signed certificates start a little in the past so a member whose clock lags accepts them.
BACKDATE = dt.timedelta(minutes=5)


class PkiError(Exception):
    """A refusal: the message names the problem and the fix."""


@dataclass
class Want:
    """What one leaf certificate must say."""

    name: str
    cn: str
    eku: List[str]
    sans: List[str] = field(default_factory=list)


# --- keys -------------------------------------------------------------------------------

def new_key(key_type: str, curve: str = "secp256r1") -> Any:
    if key_type == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ECC":
        return ec.generate_private_key(CURVES[curve]())
    raise PkiError("unknown key type %r: use ECC or RSA" % key_type)


def key_kind(key: Any) -> str:
    """'ECC/secp256r1', 'RSA' or the class name: what a key is, for messages and checks."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ECC/" + key.curve.name
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    return type(key).__name__


def key_is(key: Any, key_type: str, curve: str) -> bool:
    return key_kind(key) == ("ECC/" + curve if key_type == "ECC" else key_type)


def key_pem(key: Any, passphrase: Optional[str] = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def load_key(data: bytes, passphrase: Optional[str] = None) -> Any:
    return serialization.load_pem_private_key(data, password=passphrase.encode() if passphrase else None)


def usable_key(path: str, key_type: str, curve: str) -> Any:
    """The unencrypted key at path if it exists, parses and is of the wanted kind, else None."""
    data = read_file(path)
    if data is None:
        return None
    try:
        key = load_key(data)
    except (ValueError, TypeError):
        return None
    return key if key_is(key, key_type, curve) else None


def public_pem(key: Any) -> str:
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# --- reading certificates ---------------------------------------------------------------

def not_after(cert: x509.Certificate) -> dt.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=dt.timezone.utc)


def san_strings(cert: x509.Certificate) -> List[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return (["DNS:" + n for n in ext.get_values_for_type(x509.DNSName)]
            + ["IP:" + str(a) for a in ext.get_values_for_type(x509.IPAddress)])


def eku_names(cert: x509.Certificate) -> List[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    by_oid = {oid: name for name, oid in EKU.items()}
    return [by_oid.get(oid, oid.dotted_string) for oid in ext]


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    pub = ca.public_key()
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        else:
            pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


def _norm_san(san: str) -> str:
    kind, _sep, value = san.partition(":")
    if kind.upper() == "IP":
        return "IP:" + str(ipaddress.ip_address(value))
    return kind.upper() + ":" + value.lower()


def parse_instant(text: Optional[str]) -> Optional[dt.datetime]:
    """etcd_pki_reissue_before: '' (none) or a UTC time such as 2026-12-03T21:00:00Z; raises PkiError."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise PkiError("etcd_pki_reissue_before is %r, not a time: use UTC like %s"
                       % (text, dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")))
    if when.tzinfo is None:
        raise PkiError("etcd_pki_reissue_before %r has no time zone: end it with Z (UTC)" % text)
    when = when.astimezone(dt.timezone.utc)
    # The signing and the check use this controller's clock: a later time would sign again
    # on every run until it has passed.
    if when > dt.datetime.now(dt.timezone.utc):
        raise PkiError("etcd_pki_reissue_before %s is in the future: every later run would sign again; "
                       "use the time the rotation starts" % text)
    return when


def not_before(cert: x509.Certificate) -> dt.datetime:
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=dt.timezone.utc)


def renewal_reasons(cert_pem: Optional[str], want: Want, public_key_pem: str, ca: x509.Certificate,
                    renew_days: int, now: Optional[dt.datetime] = None,
                    reissue_before: Optional[dt.datetime] = None) -> List[str]:
    """Why the installed certificate must be signed again; empty when it is good as it is.

    reissue_before (a rotation): a certificate issued before that instant is signed again;
    the ones signed by that run are newer, so the next run signs nothing.
    """
    if not cert_pem:
        return ["no certificate yet"]
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return ["the installed certificate does not parse"]
    now = now or dt.datetime.now(dt.timezone.utc)
    reasons = []
    if public_pem(cert.public_key()) != public_key_pem:
        reasons.append("it does not match the private key")
    if not signed_by(cert, ca):
        reasons.append("it is not signed by the controller's CA")
    if common_name(cert) != want.cn:
        reasons.append("its common name is %r, not %r" % (common_name(cert), want.cn))
    have_sans = sorted(_norm_san(s) for s in san_strings(cert))
    want_sans = sorted({_norm_san(s) for s in want.sans})
    if have_sans != want_sans:
        reasons.append("its subjectAltNames differ (%s)" % ", ".join(
            ["+" + s for s in want_sans if s not in have_sans] + ["-" + s for s in have_sans if s not in want_sans]))
    if sorted(eku_names(cert)) != sorted(want.eku):
        reasons.append("its extended key usage is %s, not %s" % (sorted(eku_names(cert)), sorted(want.eku)))
    left = not_after(cert) - now
    if left < dt.timedelta(days=renew_days):
        reasons.append("it expires in %d days (renewal window %d days)" % (left.days, renew_days))
    # Signed certificates start BACKDATE early (clock skew) and carry whole seconds: one signed
    # in the rotation's own second counts as new.
    issued = not_before(cert) + BACKDATE
    if reissue_before is not None and issued < reissue_before.replace(microsecond=0):
        reasons.append("it was issued %s, before etcd_pki_reissue_before (%s)"
                       % (issued.strftime("%Y-%m-%dT%H:%M:%SZ"), reissue_before.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return reasons


# --- signing ----------------------------------------------------------------------------

def _san_entries(sans: Sequence[str]) -> List[x509.GeneralName]:
    out: List[x509.GeneralName] = []
    for san in sans:
        kind, _sep, value = san.partition(":")
        if kind.upper() == "IP":
            out.append(x509.IPAddress(ipaddress.ip_address(value)))
        elif kind.upper() == "DNS":
            out.append(x509.DNSName(value))
        else:
            raise PkiError("subjectAltName %r: write DNS:<name> or IP:<address>" % san)
    return out


def _hash_for(key: Any) -> Any:
    return hashes.SHA384() if key_kind(key) == "ECC/secp384r1" else hashes.SHA256()


def sign_leaf(public_key_pem: str, want: Want, ca: x509.Certificate, ca_key: Any, valid_days: int,
              now: Optional[dt.datetime] = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    pub = serialization.load_pem_public_key(public_key_pem.encode())
    unknown = [e for e in want.eku if e not in EKU]
    if unknown:
        raise PkiError("extended key usage %s: use serverAuth and/or clientAuth" % unknown)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, want.cn)]))
               .issuer_name(ca.subject)
               .public_key(pub)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - BACKDATE)
               .not_valid_after(now + dt.timedelta(days=valid_days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([EKU[e] for e in want.eku]), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False))
    if want.sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san_entries(want.sans)), critical=False)
    return builder.sign(ca_key, _hash_for(ca_key)).public_bytes(serialization.Encoding.PEM).decode()


def self_sign_ca(ca_key: Any, cn: str, valid_days: int, now: Optional[dt.datetime] = None) -> str:
    now = now or dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    pub = ca_key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(pub)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .sign(ca_key, _hash_for(ca_key)))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- the controller's CA ----------------------------------------------------------------

def open_ca_key(data: bytes, passphrase: str, path: str, key_type: str, curve: str) -> Any:
    """Load the existing CA key or refuse; an existing CA key is never replaced."""
    try:
        key = load_key(data, passphrase)
    except TypeError:
        raise PkiError("%s is not protected by a passphrase; this toolkit only keeps encrypted CA keys. "
                       "Encrypt it with `openssl pkey -in %s -aes256 -out %s.enc` and move it into place"
                       % (path, path, path))
    except ValueError:
        raise PkiError("cannot read the CA key %s: the passphrase (etcd_ca_passphrase) is wrong or the file is "
                       "damaged. Use the passphrase the CA was created with, or restore the PKI folder from its "
                       "backup. The key is left as it is: a new CA would split the cluster" % path)
    if not key_is(key, key_type, curve):
        raise PkiError("the CA key %s is %s, but etcd_pki_key_type/etcd_pki_key_curve ask for %s. The CA key is "
                       "never replaced: set them to match it (they apply to new keys only)"
                       % (path, key_kind(key), key_type + ("/" + curve if key_type == "ECC" else "")))
    return key


RENEW_CA = ("renew it with the same key: move ca.crt aside (for example to ca.crt.old-<date>) and run "
            "again; a CA certificate made from the same key is trusted by every member")


def ca_problems(ca_pem: str, ca_key: Any, now: Optional[dt.datetime] = None) -> List[str]:
    """Why a CA certificate cannot be used with this key (empty when it can), each with its fix."""
    now = now or dt.datetime.now(dt.timezone.utc)
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    if public_pem(ca.public_key()) != public_pem(ca_key):
        return ["ca.crt does not belong to ca.key: restore the PKI folder from its backup (README: 'The CA')"]
    if not_after(ca) <= now:
        return ["the CA certificate expired on %s: %s" % (not_after(ca).date(), RENEW_CA)]
    return []


def split_pems(text: Optional[str]) -> List[str]:
    """The certificates of a PEM bundle, each as its own PEM (cryptography 38 has no bundle loader)."""
    end = "-----END CERTIFICATE-----"
    return [part[part.index("-----BEGIN CERTIFICATE-----"):] + end + "\n"
            for part in (text or "").split(end) if "-----BEGIN CERTIFICATE-----" in part]


def load_bundle(text: Optional[str]) -> List[x509.Certificate]:
    """Every certificate of a PEM bundle; raises ValueError when one does not parse."""
    return [x509.load_pem_x509_certificate(p.encode()) for p in split_pems(text)]


def same_ca(a: x509.Certificate, b: x509.Certificate) -> bool:
    """Same subject and key: a CA certificate made again from the same key is the same CA."""
    return a.subject == b.subject and public_pem(a.public_key()) == public_pem(b.public_key())


def strangers(member_cas: Dict[str, str], ca_pem: Optional[str]) -> List[str]:
    """Hosts that trust none of the CAs in ca_pem (one CA, or a rotation's bundle); hosts
    without a CA file are skipped."""
    known = load_bundle(ca_pem) if ca_pem else []
    out = []
    for host, pem in sorted(member_cas.items()):
        if not (pem or "").strip():
            continue
        try:
            have = load_bundle(pem)
        except ValueError:
            out.append(host)
            continue
        if not any(same_ca(h, k) for h in have for k in known):
            out.append(host)
    return out


def lacking(member_cas: Dict[str, str], ca_pem: str) -> List[str]:
    """Hosts whose CA file does not (yet) trust the CA of ca_pem."""
    want = x509.load_pem_x509_certificate(ca_pem.encode())
    out = []
    for host, pem in sorted(member_cas.items()):
        try:
            have = load_bundle(pem)
        except ValueError:
            have = []
        if not any(same_ca(h, want) for h in have):
            out.append(host)
    return out


def days_left(cert_pem: str, now: Optional[dt.datetime] = None) -> int:
    now = now or dt.datetime.now(dt.timezone.utc)
    return (not_after(x509.load_pem_x509_certificate(cert_pem.encode())) - now).days


# --- CA rotation (playbooks/rotate-certs.yml -e etcd_pki_ca_rotation=trust|sign|finish) --------
# The controller's folder tells how far a rotation is, so every phase can be run again:
#   ca-next.key/.crt   the new CA, made by "trust", not signing yet;
#   ca-trust.crt       the bundle hosts install as ca.crt while both CAs are trusted;
#   retired/           the old CA (after "sign") and the bundle (after "finish"), dated, kept.
ROTATION_PHASES = ["trust", "sign", "finish"]
NEXT_KEY, NEXT_CRT, TRUST_BUNDLE, RETIRED = "ca-next.key", "ca-next.crt", "ca-trust.crt", "retired"
ROTATE = "playbooks/rotate-certs.yml -e etcd_pki_ca_rotation="


def rotation_state(d: str) -> str:
    """'' (no rotation), 'trusting' (new CA made and trusted, the old one signs) or
    'signing' (the new CA signs, both are trusted)."""
    if os.path.exists(os.path.join(d, NEXT_KEY)) or os.path.exists(os.path.join(d, NEXT_CRT)):
        return "trusting"
    return "signing" if os.path.exists(os.path.join(d, TRUST_BUNDLE)) else ""


def trust_pem(d: str) -> Optional[str]:
    """What hosts install as ca.crt: the rotation's bundle while there is one, else ca.crt."""
    for name in (TRUST_BUNDLE, "ca.crt"):
        data = read_file(os.path.join(d, name))
        if data is not None:
            return data.decode()
    return None


def not_signed_by(d: str, ca: x509.Certificate) -> List[str]:
    """Certificates this controller signed (its per-host records) that the CA did not sign."""
    out = []
    for root, dirs, names in os.walk(d):
        dirs[:] = sorted(x for x in dirs if x != RETIRED)
        if root == d:
            continue
        for name in sorted(n for n in names if n.endswith(".crt")):
            path = os.path.join(root, name)
            try:
                ok = signed_by(x509.load_pem_x509_certificate(read_file(path) or b""), ca)
            except ValueError:
                ok = False
            if not ok:
                out.append(os.path.relpath(path, d))
    return out


def half_swapped(d: str, ca_key: Any) -> Optional[bytes]:
    """The new CA certificate when a "sign" run stopped between moving the new key and the new
    certificate into place (ca.key is the new key, ca.crt still the old certificate); else None."""
    nxt = read_file(os.path.join(d, NEXT_CRT))
    if nxt is None or os.path.exists(os.path.join(d, NEXT_KEY)):
        return None
    try:
        return nxt if public_pem(x509.load_pem_x509_certificate(nxt).public_key()) == public_pem(ca_key) else None
    except ValueError:
        return None


def _stamp(now: Optional[dt.datetime] = None) -> str:
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def rotate_ca(d: str, phase: str, ca_key: Any, ca_pem: str, a: Dict[str, Any], check: bool,
              now: Optional[dt.datetime] = None) -> Tuple[List[str], Any, str]:
    """Take the controller's CA one phase further (or check that it can be, in check mode).

    Returns what was done (or would be), and the CA key and certificate that sign from now on.
    A phase asked for out of order is refused (PkiError) before anything is written.
    """
    state, done = rotation_state(d), []
    next_key_path, next_crt_path = os.path.join(d, NEXT_KEY), os.path.join(d, NEXT_CRT)
    bundle_path, retired = os.path.join(d, TRUST_BUNDLE), os.path.join(d, RETIRED)
    if phase not in ROTATION_PHASES:
        raise PkiError("etcd_pki_ca_rotation is %r: use trust, then sign, then finish (README: 'Rotating the CA')"
                       % phase)

    def write(path: str, data: bytes, mode: int, what: str) -> None:
        done.append(what)
        if not check:
            write_file(path, data, mode)

    def move(src: str, dst: str, what: str) -> None:
        done.append(what)
        if not check:
            os.makedirs(os.path.dirname(dst), mode=0o700, exist_ok=True)
            os.replace(src, dst)

    if phase == "trust":
        if state == "signing":
            raise PkiError("the new CA already signs (phase sign has run): the next phase is finish (%sfinish)" % ROTATE)
        next_key_data, next_crt_data = read_file(next_key_path), read_file(next_crt_path)
        if next_key_data is None and next_crt_data is not None:
            raise PkiError("%s exists but %s does not: restore it from the PKI folder's backup, or move %s aside "
                           "and run trust again" % (next_crt_path, next_key_path, next_crt_path))
        if next_key_data is None:
            next_key = new_key(a["key_type"], a["key_curve"])
            write(next_key_path, key_pem(next_key, a["passphrase"]), 0o600, "create the new CA key (%s)" % NEXT_KEY)
        else:
            next_key = open_ca_key(next_key_data, a["passphrase"], next_key_path, a["key_type"], a["key_curve"])
        if next_crt_data is None:
            cn = "%s %s" % (a["common_name"], (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M"))
            next_pem = self_sign_ca(next_key, cn, a["valid_days"], now)
            write(next_crt_path, next_pem.encode(), 0o644, "self-sign the new CA certificate (%s)" % cn)
        else:
            next_pem = next_crt_data.decode()
            problems = ca_problems(next_pem, next_key, now)
            if problems:
                raise PkiError("%s: %s" % (next_crt_path, "; ".join(problems)))
        bundle = (ca_pem.strip() + "\n" + next_pem.strip() + "\n").encode()
        if read_file(bundle_path) != bundle:
            write(bundle_path, bundle, 0o644, "trust the old and the new CA (%s, installed as ca.crt)" % TRUST_BUNDLE)
        return done, ca_key, ca_pem

    if phase == "sign":
        if state == "":
            raise PkiError("no CA rotation is under way: run %strust first (it makes the new CA and has every "
                           "host trust it)" % ROTATE)
        if state == "signing":
            return done, ca_key, ca_pem  # the new CA signs already; hosts are signed again by the playbook
        next_key_data, next_crt_data = read_file(next_key_path), read_file(next_crt_path)
        if next_crt_data is None:
            raise PkiError("%s is missing: run %strust again" % (next_crt_path, ROTATE))
        next_pem = next_crt_data.decode()
        if next_key_data is None:
            raise PkiError("%s is missing: restore it from the PKI folder's backup" % next_key_path)
        next_key = open_ca_key(next_key_data, a["passphrase"], next_key_path, a["key_type"], a["key_curve"])
        if a.get("member_cas"):
            behind = lacking(a["member_cas"], next_pem)
            if behind:
                raise PkiError("%s do not trust the new CA yet: run %strust first (it installs the bundle and restarts "
                               "members one at a time)" % (", ".join(behind), ROTATE))
        stamp = _stamp(now)
        done.append("keep the old CA as %s/ca-%s.key and .crt" % (RETIRED, stamp))
        if not check:
            os.makedirs(retired, mode=0o700, exist_ok=True)
            write_file(os.path.join(retired, "ca-%s.crt" % stamp), ca_pem.encode(), 0o644)
            write_file(os.path.join(retired, "ca-%s.key" % stamp), read_file(os.path.join(d, "ca.key")) or b"", 0o600)
        move(next_key_path, os.path.join(d, "ca.key"), "make the new CA key ca.key")
        move(next_crt_path, os.path.join(d, "ca.crt"), "make the new CA certificate ca.crt")
        return done, next_key, next_pem

    # finish
    if state == "trusting":
        raise PkiError("the new CA does not sign yet: run %ssign first (it signs every certificate again with the "
                       "new CA)" % ROTATE)
    if state == "":
        return done, ca_key, ca_pem  # finished already, or never started: nothing to drop
    old = not_signed_by(d, x509.load_pem_x509_certificate(ca_pem.encode()))
    if old:
        raise PkiError("still signed by the old CA: %s. Those holders would be cut off once the old CA is no longer "
                       "trusted. Run %ssign again for members, backups and monitoring, and playbooks/client-cert.yml "
                       "for each application listed; move the folder of a certificate nobody uses any more out of %s"
                       % (", ".join(old), ROTATE, d))
    move(bundle_path, os.path.join(retired, "ca-trust-%s.crt" % _stamp(now)),
         "trust only the new CA (the bundle is kept in %s/)" % RETIRED)
    return done, ca_key, ca_pem


def serial_hex(cert_pem: str) -> str:
    return format(x509.load_pem_x509_certificate(cert_pem.encode()).serial_number, "x")


def parse_wants(certs: Sequence[Dict[str, Any]]) -> List[Want]:
    return [Want(name=c["name"], cn=c["cn"], eku=list(c.get("eku") or []), sans=list(c.get("sans") or []))
            for c in certs]


def read_file(path: str) -> Optional[bytes]:
    """A file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_file(path: str, data: bytes, mode: int, owner: Optional[Tuple[int, int]] = None) -> None:
    """Atomic write, with mode (and owner) set before the file appears."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix="." + os.path.basename(path))
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


# --- argument specs, shared by the action plugins and their documentation modules ---------

_KEY_OPTIONS = dict(
    key_type=dict(type="str", choices=["ECC", "RSA"], default="ECC"),
    key_curve=dict(type="str", choices=["secp256r1", "secp384r1"], default="secp256r1"),
)

CA_SPEC: Dict[str, Any] = dict(
    dir=dict(type="path", required=True),
    passphrase=dict(type="str", required=True, no_log=True),
    common_name=dict(type="str", required=True),
    valid_days=dict(type="int", default=3650),
    admin_common_name=dict(type="str", default="root"),
    cert_valid_days=dict(type="int", default=365),
    renew_days=dict(type="int", default=30),
    reissue_before=dict(type="str", default=""),
    rotation=dict(type="str", default="", choices=[""] + ROTATION_PHASES),
    ca_warn_days=dict(type="int", default=180),
    member_cas=dict(type="dict", default={}),
    **_KEY_OPTIONS,
)

CERTIFICATES_SPEC: Dict[str, Any] = dict(
    certificates=dict(type="list", elements="dict", required=True, options=dict(
        name=dict(type="str", required=True),
        owner=dict(type="str", required=True),
        cn=dict(type="str", required=True),
        eku=dict(type="list", elements="str", required=True, choices=EKU_NAMES),
        sans=dict(type="list", elements="str", default=[]),
    )),
    dir=dict(type="path", required=True),
    group=dict(type="str", required=True),
    ca_dir=dict(type="path", required=True),
    ca_passphrase=dict(type="str", required=True, no_log=True),
    record_dir=dict(type="path"),
    valid_days=dict(type="int", default=365),
    renew_days=dict(type="int", default=30),
    reissue_before=dict(type="str", default=""),
    **_KEY_OPTIONS,
)
