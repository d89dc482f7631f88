# -*- coding: utf-8 -*-
"""Action: create or check the CA and the admin client certificate on the controller.

Runs entirely on the controller, in-process: no module is sent anywhere, so a run that
changes nothing costs milliseconds. An existing CA key is never regenerated or replaced.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_pki


class ActionModule(ActionBase):
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        _valid, args = self.validate_argument_spec(argument_spec=etcd_pki.CA_SPEC)
        if etcd_pki.CRYPTOGRAPHY_ERROR:
            raise AnsibleActionFail("on the controller: " + etcd_pki.CRYPTOGRAPHY_ERROR)
        check = bool(self._task.check_mode)
        try:
            done = self._ensure(args, check)
        except etcd_pki.PkiError as e:
            raise AnsibleActionFail("Refused, nothing changed: %s" % e)
        result.update(done)
        if self._task.diff and done["actions"]:
            result["diff"] = {"before_header": self._task.args.get("dir", ""), "after_header": self._task.args.get("dir", ""),
                              "before": "", "after": "".join("%s\n" % a for a in done["actions"])}
        return result

    def _ensure(self, a: Dict[str, Any], check: bool) -> Dict[str, Any]:
        reissue_before = etcd_pki.parse_instant(a.get("reissue_before"))  # refused before anything is written
        d, rotation = a["dir"], a.get("rotation") or ""
        key_path, crt_path = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
        done: List[str] = []

        def write(path: str, data: bytes, mode: int, what: str) -> None:
            done.append(what)
            if not check:
                etcd_pki.write_file(path, data, mode)

        key_data, crt_data = etcd_pki.read_file(key_path), etcd_pki.read_file(crt_path)
        if key_data is None and crt_data is not None:
            raise etcd_pki.PkiError(
                "%s exists but %s does not. Restore ca.key from the backup of the PKI folder (README: "
                "'The CA'); a new key would make a new CA that the members do not trust" % (crt_path, key_path))
        if key_data is None and crt_data is None and etcd_pki.strangers(a["member_cas"], None):
            raise etcd_pki.PkiError(
                "%s already trust a CA, but %s holds none. Restore the PKI folder from its backup (README: "
                "'The CA') or set etcd_pki_controller_dir to where it is; a new CA would split the cluster"
                % (", ".join(etcd_pki.strangers(a["member_cas"], None)), d))
        if not os.path.isdir(d):
            done.append("create %s" % d)
            if not check:
                os.makedirs(d, mode=0o700)
        if key_data is None:
            ca_key = etcd_pki.new_key(a["key_type"], a["key_curve"])
            write(key_path, etcd_pki.key_pem(ca_key, a["passphrase"]), 0o600, "create the CA key")
        else:
            ca_key = etcd_pki.open_ca_key(key_data, a["passphrase"], key_path, a["key_type"], a["key_curve"])
            half = etcd_pki.half_swapped(d, ca_key)
            if half is not None:  # a "sign" run stopped between its two moves: finish the second
                if rotation != "sign":
                    raise etcd_pki.PkiError("a CA rotation stopped half-way in its sign phase: run %ssign again"
                                            % etcd_pki.ROTATE)
                done.append("make the new CA certificate ca.crt (a sign run stopped half-way)")
                if not check:
                    os.replace(os.path.join(d, etcd_pki.NEXT_CRT), crt_path)
                crt_data = half
        if crt_data is None:
            ca_pem = etcd_pki.self_sign_ca(ca_key, a["common_name"], a["valid_days"])
            write(crt_path, ca_pem.encode(), 0o644, "self-sign the CA certificate")
        else:
            ca_pem = crt_data.decode()
            problems = etcd_pki.ca_problems(ca_pem, ca_key)
            if problems:
                raise etcd_pki.PkiError("%s: %s" % (crt_path, "; ".join(problems)))
        # During a CA rotation members trust the old CA, the bundle or (once finished) the new one.
        extra = [etcd_pki.read_file(os.path.join(d, n)) for n in (etcd_pki.NEXT_CRT, etcd_pki.TRUST_BUNDLE)]
        known = "".join(p.decode() for p in extra if p)
        others = etcd_pki.strangers(a["member_cas"], ca_pem + known)
        if others:
            raise etcd_pki.PkiError(
                "%s trust another CA than %s (a different key or subject): this is not the PKI folder of this "
                "cluster. Point etcd_pki_controller_dir at the cluster's own folder or restore it from its backup "
                "(README: 'The CA'); signing with this CA would cut those members off" % (", ".join(others), crt_path))
        if rotation:
            steps, ca_key, ca_pem = etcd_pki.rotate_ca(d, rotation, ca_key, ca_pem, a, check)
            done += steps
        ca = etcd_pki.x509.load_pem_x509_certificate(ca_pem.encode())
        state = etcd_pki.rotation_state(d) if not check else {"trust": "trusting", "sign": "signing", "finish": ""}.get(
            rotation, etcd_pki.rotation_state(d))

        # The controller's own admin client certificate (playbooks reach etcd with it).
        admin_key_path, admin_crt_path = os.path.join(d, "admin.key"), os.path.join(d, "admin.crt")
        admin_key = etcd_pki.usable_key(admin_key_path, a["key_type"], a["key_curve"])
        if admin_key is None:
            admin_key = etcd_pki.new_key(a["key_type"], a["key_curve"])
            write(admin_key_path, etcd_pki.key_pem(admin_key), 0o600, "create the admin client key")
        admin_crt = etcd_pki.read_file(admin_crt_path)
        want = etcd_pki.Want(name="admin", cn=a["admin_common_name"], eku=["clientAuth"])
        reasons = etcd_pki.renewal_reasons(admin_crt.decode() if admin_crt else None, want,
                                           etcd_pki.public_pem(admin_key), ca, a["renew_days"],
                                           reissue_before=reissue_before)
        if reasons:
            pem = "" if check else etcd_pki.sign_leaf(etcd_pki.public_pem(admin_key), want, ca, ca_key,
                                                      a["cert_valid_days"])
            write(admin_crt_path, pem.encode(), 0o644, "sign the admin client certificate (%s)" % "; ".join(reasons))
        days_left = etcd_pki.days_left(ca_pem)
        warnings = ["the CA certificate expires in %d days: %s" % (days_left, etcd_pki.RENEW_CA)] \
            if days_left < a["ca_warn_days"] else []
        # A window as long as the lifetime renews everything now: fine once, never as a setting.
        if a["cert_valid_days"] <= a["renew_days"]:
            warnings.append("etcd_pki_cert_valid_days (%d) is not longer than etcd_pki_renew_days (%d): this run "
                            "signs every certificate again, and so will every run with these values (defaults "
                            "365 and 30)" % (a["cert_valid_days"], a["renew_days"]))
        if a["cert_valid_days"] > days_left:
            warnings.append("certificates are signed for %d days but the CA expires in %d: they stop working with "
                            "it; renew the CA (README: 'The CA')" % (a["cert_valid_days"], days_left))
        if state and not rotation:
            warnings.append("a CA rotation is under way (%s): continue it with %s%s (README: 'Rotating the CA')"
                            % ("the new CA is trusted but does not sign yet" if state == "trusting" else
                               "the new CA signs, the old one is still trusted",
                               etcd_pki.ROTATE, "sign" if state == "trusting" else "finish"))
        return {
            "warnings": warnings,
            "rotation_state": state,
            "changed": bool(done),
            "actions": done,
            "ca_certificate": crt_path,
            "ca_not_after": etcd_pki.not_after(ca).isoformat(),
            "ca_days_left": days_left,
        }
