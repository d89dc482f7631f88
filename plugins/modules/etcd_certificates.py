#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Documentation of the etcd_certificates action (plugins/action/etcd_certificates.py)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_certificates
short_description: Issue a host's certificates from the controller's CA, keys made on the host
description:
  - An action plugin. One call of M(controlplane.etcd.etcd_certificate_files) on the host
    makes sure every key exists (generated there; private keys never leave the host) and
    reports the public keys and installed certificates. The controller then signs only the
    certificates that need it, and a second call installs them.
  - A certificate is signed again when it is missing, does not belong to its key, was not
    signed by the CA in O(ca_dir), carries another common name, subjectAltNames or extended
    key usage than asked, or expires within O(renew_days).
  - etcd re-reads certificates on each new connection, so renewal needs no restart.
extends_documentation_fragment:
  - controlplane.etcd.pki_keys
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
attributes:
  check_mode:
    support: full
    description: Reports which certificates would be signed and why; nothing is generated or written.
  diff_mode:
    support: partial
    description: Lists the certificates it signs, with the reasons, and the files it fixes.
options:
  certificates:
    description: The certificates to issue.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: File stem in O(dir).
        type: str
        required: true
      owner:
        description: Account owning the private key (mode C(0600)).
        type: str
        required: true
      cn:
        description: Subject common name.
        type: str
        required: true
      eku:
        description: Extended key usages.
        type: list
        elements: str
        required: true
        choices: [serverAuth, clientAuth]
      sans:
        description: subjectAltNames, each C(DNS:<name>) or C(IP:<address>).
        type: list
        elements: str
        default: []
  dir:
    description: Folder on the host for the keys and certificates.
    type: path
    required: true
  group:
    description: Group that may enter O(dir).
    type: str
    required: true
  ca_dir:
    description: Controller folder of the CA (M(controlplane.etcd.etcd_ca)).
    type: path
    required: true
  ca_passphrase:
    description: Passphrase of the CA key, used only when something is signed.
    type: str
    required: true
  record_dir:
    description: Controller folder that keeps a copy of every certificate signed for this host.
    type: path
  valid_days:
    description: Lifetime of signed certificates.
    type: int
    default: 365
  renew_days:
    description: Certificates are signed again this many days before they expire.
    type: int
    default: 30
  reissue_before:
    description:
      - A rotation - certificates issued before this UTC time (for example V(2026-12-03T21:00:00Z)) are
        signed again; the ones this signs are newer, so the next run signs nothing.
      - A time later than now is refused before anything is written. Empty - no rotation.
    type: str
    default: ""
requirements:
  - python cryptography on the controller and the host
"""

EXAMPLES = r"""
- name: Issue the backup job's client certificate
  controlplane.etcd.etcd_certificates:
    certificates:
      - {name: backup, owner: etcd-backup, cn: backup, eku: [clientAuth]}
    dir: /etc/etcd-backup/pki
    group: etcd-backup
    ca_dir: "{{ etcd_pki_controller_dir }}"
    ca_passphrase: "{{ etcd_ca_passphrase }}"
"""

RETURN = r"""
issued:
  description: The certificates signed (or that would be, in check mode), with the reasons.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "server", "reasons": ["it expires in 12 days (renewal window 30 days)"]}]
fixed:
  description: Files created or corrected on the host.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_pki import CERTIFICATES_SPEC


def main() -> None:
    module = AnsibleModule(argument_spec=CERTIFICATES_SPEC, supports_check_mode=True)
    module.fail_json(msg="etcd_certificates runs as an action plugin; call it from a playbook")


if __name__ == "__main__":
    main()
