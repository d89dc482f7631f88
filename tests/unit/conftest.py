"""Make the repo's plugins importable in unit tests without any ansible.cfg.

``plugins/module_utils/*.py`` becomes ``ansible.module_utils.<name>``, the
name modules use at run time. Modules and filter plugins are loaded from
their files with :func:`load_plugin` (several share a file name, such as
plugins/modules/etcd_status.py and plugins/filter/etcd_status.py).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
MODULE_UTILS = PLUGINS / "module_utils"


def _alias_module_utils() -> None:
    try:
        import ansible.module_utils as mu  # the installed ansible-core
    except ImportError:
        # No ansible here (e.g. a bare Python 3.9 run of the pure tests):
        # build just enough of the package for module_utils imports.
        ansible = types.ModuleType("ansible")
        ansible.__path__ = []
        mu = types.ModuleType("ansible.module_utils")
        mu.__path__ = []
        ansible.module_utils = mu
        sys.modules.setdefault("ansible", ansible)
        sys.modules.setdefault("ansible.module_utils", mu)
    # Append, never prepend: the real ansible.module_utils.basic must win.
    if str(MODULE_UTILS) not in mu.__path__:
        mu.__path__.append(str(MODULE_UTILS))


_alias_module_utils()


def load_plugin(relpath: str, name: str) -> types.ModuleType:
    """Import a plugin file (e.g. ``modules/etcd_status.py``) under ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PLUGINS / relpath)
    assert spec and spec.loader, relpath
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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
