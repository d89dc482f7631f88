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


def strangers(member_cas: Dict[str, str], ca_pem: Optional[str]) -> List[str]:
    """Hosts whose trusted CA (PEM) is not ca_pem's key and subject; hosts without one are skipped."""
    want = x509.load_pem_x509_certificate(ca_pem.encode()) if ca_pem else None
    out = []
    for host, pem in sorted(member_cas.items()):
        if not (pem or "").strip():
            continue
        try:
            have = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            out.append(host)
            continue
        if want is None or have.subject != want.subject or public_pem(have.public_key()) != public_pem(want.public_key()):
            out.append(host)
    return out


def days_left(cert_pem: str, now: Optional[dt.datetime] = None) -> int:
    now = now or dt.datetime.now(dt.timezone.utc)
    return (not_after(x509.load_pem_x509_certificate(cert_pem.encode())) - now).days


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
