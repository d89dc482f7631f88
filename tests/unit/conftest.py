"""Unit tests import the toolkit the way Ansible does: as the collection controlplane.etcd.

`make unit` puts the checkout's collections/ folder (which links back to the repository
root as ansible_collections/controlplane/etcd) on PYTHONPATH, so plugins import each other
by their full names here exactly as they do at run time.
"""
from __future__ import annotations

import importlib
import types
from pathlib import Path

import pytest

COLLECTION = "ansible_collections.controlplane.etcd"


def load_plugin(relpath: str, name: str = "") -> types.ModuleType:
    """Import a plugin by its path under plugins/ (e.g. ``modules/etcd_status.py``)."""
    dotted = relpath[: -len(".py")].replace("/", ".")
    return importlib.import_module("%s.plugins.%s" % (COLLECTION, dotted))
@pytest.fixture(scope="session")
def plugin_loader():
    """``plugin_loader("filter/etcd_status.py", "etcd_status_filter")``."""
    return load_plugin


def write_self_signed(folder: Path, common_name: str, stem: str) -> tuple[str, str]:
    """A throwaway self-signed ECDSA certificate for 127.0.0.1 (also its own CA): (cert, key) paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    crt, pem = folder / (stem + ".crt"), folder / (stem + ".key")
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return str(crt), str(pem)
