# -*- coding: utf-8 -*-
"""Action: issue a host's certificates from the controller's CA in one or two round trips.

1. etcd_certificate_files on the host: keys exist (made there), report public keys and the
   installed certificates.
2. On the controller: decide, per certificate, whether it must be signed (missing, another
   key, another CA, other names or usages, inside the renewal window) and sign those.
3. Only if something was signed: etcd_certificate_files again, to install them.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_pki

HOST_MODULE = "controlplane.etcd.etcd_certificate_files"


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        _valid, a = self.validate_argument_spec(argument_spec=etcd_pki.CERTIFICATES_SPEC)
        if etcd_pki.CRYPTOGRAPHY_ERROR:
            raise AnsibleActionFail("on the controller: " + etcd_pki.CRYPTOGRAPHY_ERROR)
        check = bool(self._task.check_mode)
        ca_path = os.path.join(a["ca_dir"], "ca.crt")
        if not os.path.exists(ca_path):
            if check:
                result.update(changed=True, msg="no CA on the controller yet (check mode): every certificate would be issued")
                return result
            raise AnsibleActionFail("no CA certificate at %s: the etcd_pki role's main entry point creates it "
                                    "(playbooks/site.yml --tags pki)" % ca_path)
        with open(ca_path) as f:
            ca_pem = f.read()
        ca = etcd_pki.x509.load_pem_x509_certificate(ca_pem.encode())
        try:
            reissue_before = etcd_pki.parse_instant(a.get("reissue_before"))
        except etcd_pki.PkiError as e:
            raise AnsibleActionFail("Refused, nothing signed: %s" % e)
        wants = etcd_pki.parse_wants(a["certificates"])
        owners = {c["name"]: c["owner"] for c in a["certificates"]}
        # Hosts trust what the controller trusts: during a CA rotation, the old and the new CA.
        trust = etcd_pki.trust_pem(a["ca_dir"]) or ca_pem
        host_args = dict(dir=a["dir"], group=a["group"], ca_certificate=trust, key_type=a["key_type"],
                         key_curve=a["key_curve"],
                         certificates=[{"name": w.name, "owner": owners[w.name]} for w in wants])

        seen = self._host(host_args, task_vars)
        fixed: List[str] = list(seen.get("fixed", []))
        reasons: Dict[str, List[str]] = {}
        for w in wants:
            k = seen["keys"][w.name]
            reasons[w.name] = (["a new key"] if k["public_key"] is None else
                               etcd_pki.renewal_reasons(k["certificate"], w, k["public_key"], ca, a["renew_days"],
                                                        reissue_before=reissue_before))
        to_sign = [w for w in wants if reasons[w.name]]

        if to_sign and not check:
            try:
                ca_key = etcd_pki.open_ca_key(_read(os.path.join(a["ca_dir"], "ca.key")), a["ca_passphrase"],
                                              os.path.join(a["ca_dir"], "ca.key"), a["key_type"], a["key_curve"])
                signed = {w.name: etcd_pki.sign_leaf(seen["keys"][w.name]["public_key"], w, ca, ca_key,
                                                     a["valid_days"]) for w in to_sign}
            except etcd_pki.PkiError as e:
                raise AnsibleActionFail("Refused, nothing signed: %s" % e)
            if a["record_dir"]:  # the controller's record of what it signed for this host
                os.makedirs(a["record_dir"], mode=0o700, exist_ok=True)
                for name, pem in signed.items():
                    etcd_pki.write_file(os.path.join(a["record_dir"], name + ".crt"), pem.encode(), 0o644)
            host_args["certificates"] = [dict(c, certificate=signed[c["name"]]) if c["name"] in signed else c
                                         for c in host_args["certificates"]]
            fixed += self._host(host_args, task_vars).get("fixed", [])

        issued = [{"name": w.name, "reasons": reasons[w.name]} for w in to_sign]
        result.update(changed=bool(fixed or to_sign), issued=issued, fixed=sorted(set(fixed)))
        if self._task.diff and (fixed or to_sign):
            result["diff"] = {"before_header": a["dir"], "after_header": a["dir"], "before": "",
                              "after": "".join("sign %s.crt: %s\n" % (i["name"], "; ".join(i["reasons"])) for i in issued)
                              + "".join("%s\n" % f for f in sorted(set(fixed)) if not f.startswith("certificate "))}
        return result

    def _host(self, args: Dict[str, Any], task_vars: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        res = self._execute_module(module_name=HOST_MODULE, module_args=args, task_vars=task_vars)
        if res.get("failed"):
            raise AnsibleActionFail(res.get("msg", "etcd_certificate_files failed"), result=res)
        return res


def _read(path: str) -> bytes:
    data = etcd_pki.read_file(path)
    if data is None:
        raise etcd_pki.PkiError("%s is missing: restore it from the backup of the PKI folder (README: 'The CA')" % path)
    return data
