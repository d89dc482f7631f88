#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: the host side of etcd_certificates (keys stay on the host)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_certificate_files
short_description: Keep a host's private keys and install certificates the controller signed
description:
  - The host side of M(controlplane.etcd.etcd_certificates), which calls it twice at most;
    use that action rather than this module.
  - Makes sure O(dir) exists, holds the CA certificate and one private key per entry of
    O(certificates), and reports each key's public half and the certificate installed
    beside it, so the controller can decide what to sign.
  - A missing key, or one of another type than O(key_type)/O(key_curve), is generated as
    C(<name>.key.next) and only replaces C(<name>.key) when the certificate signed for it is
    installed, so a key and its certificate always change together. Private keys never
    leave the host.
  - Entries that carry a C(certificate) are installed (written atomically, C(root), mode
    C(0644)), after checking that the certificate belongs to the key.
extends_documentation_fragment:
  - controlplane.etcd.pki_keys
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
attributes:
  check_mode:
    support: full
    description: Reports what it would create or fix; new keys are not generated.
  diff_mode:
    support: none
    description: Key material is never shown.
options:
  dir:
    description: Folder for the keys and certificates (C(root), group O(group), mode C(0750)).
    type: path
    required: true
  group:
    description: Group that may enter O(dir).
    type: str
    required: true
  ca_certificate:
    description: PEM of the CA certificate, installed as C(ca.crt).
    type: str
    required: true
  certificates:
    description: One entry per key and certificate pair.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: File stem (C(<name>.key), C(<name>.crt)).
        type: str
        required: true
      owner:
        description: Account that owns the private key (owner and group, mode C(0600)).
        type: str
        required: true
      certificate:
        description: A signed certificate (PEM) to install; omit to only report.
        type: str
requirements:
  - python cryptography on the host
"""

EXAMPLES = r"""
- name: Report the keys and certificates of the backup job's folder
  controlplane.etcd.etcd_certificate_files:
    dir: /etc/etcd-backup/pki
    group: etcd-backup
    ca_certificate: "{{ lookup('ansible.builtin.file', 'pki/ca.crt') }}"
    certificates:
      - {name: backup, owner: etcd-backup}
"""

RETURN = r"""
keys:
  description: Per entry name, the public key to sign and the certificate installed now.
  returned: always
  type: dict
  sample:
    server:
      public_key: "-----BEGIN PUBLIC KEY-----..."
      certificate: "-----BEGIN CERTIFICATE-----..."
      pending: false
fixed:
  description: What was created or corrected (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["created /etc/etcd/pki", "new key server.key.next"]
"""

import grp
import os
import pwd
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_pki


class Files:
    """File changes that honour check mode and remember what they did."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.fixed: List[str] = []

    def attrs(self, path: str, owner: str, group: str, mode: int) -> None:
        st = os.stat(path)
        uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
        if (st.st_uid, st.st_gid) != (uid, gid):
            self.fixed.append("owner of %s" % path)
            if not self.module.check_mode:
                os.chown(path, uid, gid)
        if st.st_mode & 0o7777 != mode:
            self.fixed.append("mode of %s" % path)
            if not self.module.check_mode:
                os.chmod(path, mode)

    def write(self, path: str, data: bytes, owner: str, group: str, mode: int, what: str) -> None:
        """Atomic write, with owner and mode set before the file appears."""
        self.fixed.append(what)
        if self.module.check_mode:
            return
        etcd_pki.write_file(path, data, mode, (pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid))


def account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        try:
            grp.getgrnam(name)
        except KeyError:
            return False
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            group=dict(type="str", required=True),
            ca_certificate=dict(type="str", required=True),
            key_type=dict(type="str", choices=["ECC", "RSA"], default="ECC"),
            key_curve=dict(type="str", choices=["secp256r1", "secp384r1"], default="secp256r1"),
            certificates=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                owner=dict(type="str", required=True),
                certificate=dict(type="str"),
            )),
        ),
        supports_check_mode=True,
    )
    if etcd_pki.CRYPTOGRAPHY_ERROR:
        module.fail_json(msg=missing_required_lib("cryptography (Debian: python3-cryptography)"))
    p = module.params
    d, files = p["dir"], Files(module)
    missing = sorted(a for a in {p["group"]} | {c["owner"] for c in p["certificates"]} if not account_exists(a))
    if missing and not module.check_mode:
        module.fail_json(msg="%s: no such account on this host; create it before its certificates" % ", ".join(missing))
    if missing:  # check mode: an earlier task would create them, so would every file here
        module.exit_json(changed=True, fixed=["accounts %s do not exist yet" % ", ".join(missing)],
                         keys={c["name"]: {"public_key": None, "certificate": None, "pending": True}
                               for c in p["certificates"]})

    if not os.path.isdir(d):
        files.fixed.append("created %s" % d)
        if not module.check_mode:
            os.makedirs(d, mode=0o750)
    if os.path.isdir(d):
        files.attrs(d, "root", p["group"], 0o750)
    ca = p["ca_certificate"].strip().encode() + b"\n"
    if etcd_pki.read_file(os.path.join(d, "ca.crt")) != ca:
        files.write(os.path.join(d, "ca.crt"), ca, "root", "root", 0o644, "CA certificate")
    elif os.path.isdir(d):
        files.attrs(os.path.join(d, "ca.crt"), "root", "root", 0o644)

    keys: Dict[str, Dict[str, Any]] = {}
    for entry in p["certificates"]:
        name, owner = entry["name"], entry["owner"]
        live, nxt = os.path.join(d, name + ".key"), os.path.join(d, name + ".key.next")
        key, pending = etcd_pki.usable_key(live, p["key_type"], p["key_curve"]), False
        if key is None:
            pending = True
            key = etcd_pki.usable_key(nxt, p["key_type"], p["key_curve"])  # left by an interrupted run
            if key is None:
                key = None if module.check_mode else etcd_pki.new_key(p["key_type"], p["key_curve"])
                files.write(nxt, etcd_pki.key_pem(key) if key else b"", owner, owner, 0o600,
                            "new key %s.key.next" % name)
        else:
            files.attrs(live, owner, owner, 0o600)
        crt_path = os.path.join(d, name + ".crt")
        signed = entry.get("certificate")
        if signed and key is not None:
            cert = etcd_pki.x509.load_pem_x509_certificate(signed.encode())
            if etcd_pki.public_pem(cert.public_key()) != etcd_pki.public_pem(key):
                module.fail_json(msg="the certificate for %s does not belong to its key; nothing installed" % name)
            files.write(crt_path, signed.strip().encode() + b"\n", "root", "root", 0o644, "certificate %s" % name)
            if pending and not module.check_mode:
                os.rename(nxt, live)
                pending = False
        elif os.path.exists(crt_path):
            files.attrs(crt_path, "root", "root", 0o644)
        current = etcd_pki.read_file(crt_path)
        keys[name] = {
            "public_key": etcd_pki.public_pem(key) if key is not None else None,
            "certificate": current.decode() if current else None,
            "pending": pending,
        }
    module.exit_json(changed=bool(files.fixed), keys=keys, fixed=files.fixed)


if __name__ == "__main__":
    main()
