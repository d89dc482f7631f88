# -*- coding: utf-8 -*-
"""Key options shared by the PKI plugins (etcd_ca, etcd_certificates, etcd_certificate_files)."""
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  key_type:
    description: Algorithm of new keys.
    type: str
    choices: [ECC, RSA]
    default: ECC
  key_curve:
    description: Curve of new ECC keys.
    type: str
    choices: [secp256r1, secp384r1]
    default: secp256r1
"""
