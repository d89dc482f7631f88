"""From the controller: a certificate from another CA is refused on the client and peer ports."""
from __future__ import annotations

import datetime
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import MEMBERS, PKI


def _rogue_client(directory: Path) -> tuple[Path, Path]:
    """A CA nobody trusts, and a client certificate it signed (serverAuth + clientAuth)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rogue CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                                  ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "rogue.crt", directory / "rogue.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _handshake(address: str, port: int, cert: Path, key: Path) -> None:
    context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(str(cert), str(key))
    with socket.create_connection((address, port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            # TLS 1.3 reports a rejected client certificate on the first read.
            tls.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = tls.recv(4096)
            if not data:
                raise ssl.SSLError("connection closed by peer")


@pytest.mark.parametrize("member", sorted(MEMBERS))
@pytest.mark.parametrize("port", [2379, 2380])
def test_foreign_ca_client_is_refused(member, port):
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _rogue_client(Path(tmp))
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            _handshake(MEMBERS[member], port, cert, key)


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_our_admin_certificate_is_accepted(member):
    # Positive control: proves the refusal above is about the CA, not the test harness.
    _handshake(MEMBERS[member], 2379, PKI / "admin.crt", PKI / "admin.key")
