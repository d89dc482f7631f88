#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Documentation of the etcd_ca action (the work is done by plugins/action/etcd_ca.py)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_ca
short_description: Create or check the cluster CA and the admin client certificate on the controller
description:
  - Runs on the controller only, as an action plugin; nothing is sent to a host.
  - Creates O(dir) (mode C(0700)), a passphrase-protected CA key C(ca.key) and a self-signed
    C(ca.crt) when neither exists. An existing CA key is never regenerated or replaced - a
    key that cannot be read with O(passphrase), a key of another type than
    O(key_type)/O(key_curve), a C(ca.crt) without its C(ca.key), a C(ca.crt) that does not
    belong to the key or that has expired are refusals that change nothing and name the fix.
  - An existing CA key must be of O(key_type) and O(key_curve); they only choose new keys.
  - Keeps C(admin.key) and C(admin.crt), the controller's client certificate with common
    name O(admin_common_name), signing it again when it is missing, does not match, or is
    within O(renew_days) of expiry.
extends_documentation_fragment:
  - controlplane.etcd.pki_keys
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
attributes:
  check_mode:
    support: full
    description: Reports what it would create or sign and writes nothing.
  diff_mode:
    support: none
    description: Key material is never shown.
options:
  dir:
    description: Controller folder of the CA.
    type: path
    required: true
  passphrase:
    description: Passphrase of the CA key. Keep it in Ansible Vault.
    type: str
    required: true
  common_name:
    description: Subject common name of a new CA.
    type: str
    required: true
  valid_days:
    description: Lifetime of a new CA certificate.
    type: int
    default: 3650
  admin_common_name:
    description: Common name of the admin client certificate (the etcd user with RBAC on).
    type: str
    default: root
  cert_valid_days:
    description: Lifetime of the admin client certificate.
    type: int
    default: 365
  renew_days:
    description: The admin certificate is signed again this many days before it expires.
    type: int
    default: 30
  reissue_before:
    description:
      - A rotation - the admin certificate is signed again if it was issued before this UTC time
        (for example V(2026-12-03T21:00:00Z)); the new one is newer, so the next run signs nothing.
      - A time later than now is refused before anything is written. Empty - no rotation.
    type: str
    default: ""
  rotation:
    description:
      - Moves a CA rotation one phase on; each phase can be run again and a phase out of order is refused
        before anything is written.
      - V(trust) creates the new CA (C(ca-next.key), C(ca-next.crt)) and the bundle C(ca-trust.crt) of the old
        and the new CA, which hosts then install as their C(ca.crt).
      - V(sign) keeps the old CA in C(retired/) with the date, and makes the new one C(ca.key) and C(ca.crt),
        so it signs from now on. With O(member_cas), refused while a member does not trust the new CA yet.
      - V(finish) moves the bundle to C(retired/), so hosts trust the new CA only; refused while a
        certificate recorded under O(dir) is not signed by the new CA.
      - Empty - no rotation phase; a rotation under way is reported as a warning.
    type: str
    choices: ["", trust, sign, finish]
    default: ""
  ca_warn_days:
    description:
      - Warn when the CA certificate expires within this many days, with the renewal step
        (a new CA certificate from the same key). An expired CA certificate is refused.
    type: int
    default: 180
  member_cas:
    description:
      - The CA certificate (PEM) each host trusts now, by host name; an empty value for a host
        without one. A controller without a CA while any host trusts one, or a CA whose key or
        subject differs from a host's, is refused (preflight passes what it read on the members).
    type: dict
    default: {}
requirements:
  - python cryptography on the controller
"""

EXAMPLES = r"""
- name: Create or check the CA
  controlplane.etcd.etcd_ca:
    dir: "{{ etcd_pki_controller_dir }}"
    passphrase: "{{ etcd_ca_passphrase }}"
    common_name: "{{ etcd_cluster_name }} etcd CA"
  run_once: true
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: ["create the CA key", "self-sign the CA certificate"]
ca_certificate:
  description: Path of the CA certificate.
  returned: success
  type: str
ca_not_after:
  description: When the CA certificate expires (ISO 8601, UTC).
  returned: success
  type: str
ca_days_left:
  description: Days until the CA certificate expires.
  returned: success
  type: int
rotation_state:
  description:
    - How far a CA rotation is after this task - V(trusting) (the new CA is trusted, the old one signs),
      V(signing) (the new CA signs, both are trusted) or empty (no rotation under way).
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_pki import CA_SPEC


def main() -> None:
    module = AnsibleModule(argument_spec=CA_SPEC, supports_check_mode=True)
    module.fail_json(msg="etcd_ca runs as an action plugin on the controller; call it from a playbook")


if __name__ == "__main__":
    main()
