#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Bring etcd's users, roles and auth switch to what the inventory declares."""
from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_rbac
short_description: Manage etcd RBAC for certificate identities (users mapped from the client certificate CN)
description:
  - Creates the admin, backup and monitoring users and one user and role per application,
    then turns authentication on (or off).
  - Users get no password; with C(client-cert-auth) the certificate CN is the user name.
  - The toolkit's roles (C(app-<name>)) get exactly the declared permissions. Users and roles
    the inventory does not declare are left alone, never deleted.
  - Run it as the admin (root) identity, on a member host.
version_added: "1.0.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
extends_documentation_fragment:
  - controlplane.etcd.etcd_client
attributes:
  check_mode:
    support: full
    description: Reads users, roles and the auth state, and reports the calls it would make.
  diff_mode:
    support: none
    description: The changes are listed in RV(changes) instead.
options:
  enabled:
    description: Whether authentication should be on. Turning it off is allowed but warned about.
    type: bool
    default: true
  admin_user:
    description: CN of the admin certificate; gets the root role (etcd requires a root user before auth is enabled).
    type: str
    default: root
  backup_user:
    description: CN of the backup certificate; gets the root role because Snapshot is a maintenance call etcd keeps for root.
    type: str
    required: true
  monitoring_user:
    description: CN of the monitoring certificate; gets no role (C(/metrics) and C(/health) are outside RBAC).
    type: str
    required: true
  reserved_names:
    description:
      - Other certificate CNs no application may take, such as the peer certificates' CN and the
        member names (server certificates also carry clientAuth).
    type: list
    elements: str
    default: []
  applications:
    description:
      - One entry per application; its certificate CN and etcd user are O(applications[].name),
        its role C(app-<name>).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name and certificate CN.
        type: str
        required: true
      prefixes:
        description: Key prefixes; a string means V(readwrite), or give C(prefix) and C(permission) (V(read), V(write), V(readwrite)).
        type: list
        elements: raw
        required: true
"""

EXAMPLES = r"""
- name: Users, roles and auth
  controlplane.etcd.etcd_rbac:
    endpoints: [https://127.0.0.1:2379]
    cacert: /etc/etcd/pki/ca.crt
    cert: /etc/etcd/pki/admin.crt
    key: /etc/etcd/pki/admin.key
    backup_user: etcd-backup
    monitoring_user: etcd-prometheus
    applications:
      - name: kube-apiserver
        prefixes: [/registry/]
      - name: patroni
        prefixes:
          - {prefix: /service/, permission: readwrite}
"""

RETURN = r"""
changes:
  description: What was (or in check mode would be) done, in order.
  returned: always
  type: list
  elements: str
  sample: ["add user etcd-backup (certificate only, no password)", "grant role root to user etcd-backup", "enable authentication"]
auth_enabled:
  description: Authentication state after the run (in check mode, the state the run would leave).
  returned: always
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_rbac import (
    APP_ROLE_PREFIX,
    application_problems,
    desired_state,
    parse_role_grants,
    parse_user_roles,
)
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_rbac import plan as rbac_plan
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import (
    Etcdctl, client_argument_spec, command_error, probe_auth)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            client_argument_spec(),
            enabled=dict(type="bool", default=True),
            admin_user=dict(type="str", default="root"),
            backup_user=dict(type="str", required=True),
            monitoring_user=dict(type="str", required=True),
            reserved_names=dict(type="list", elements="str", default=[]),
            applications=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                prefixes=dict(type="list", elements="raw", required=True),
            )),
        ),
        required_together=[("cert", "key")],
        supports_check_mode=True,
    )
    p = module.params
    endpoints = [e.strip() for e in p["endpoints"] if e and e.strip()]
    reserved = [p["admin_user"], p["backup_user"], p["monitoring_user"], *p["reserved_names"]]
    problems = application_problems(p["applications"], reserved)
    if not endpoints:
        problems.append("endpoints must list at least one client URL")
    if not os.access(p["etcdctl"], os.X_OK):
        problems.append("etcdctl not found or not executable at %s" % p["etcdctl"])
    if problems:
        module.fail_json(msg="; ".join(problems))

    for name in Etcdctl.clashing_env(os.environ):
        del os.environ[name]
    ctl = Etcdctl(run=module.run_command, etcdctl=p["etcdctl"], cacert=p["cacert"], cert=p["cert"], key=p["key"],
                  dial_timeout=p["dial_timeout"], command_timeout=p["command_timeout"])

    def run(*args: str) -> str:
        rc, out, err = ctl(endpoints, *args)
        if rc != 0:
            module.fail_json(msg="etcdctl %s failed: %s" % (" ".join(args), command_error(rc, out, err)))
        return out

    enabled = auth_enabled(ctl, endpoints, module)
    desired = desired_state(p["admin_user"], p["backup_user"], p["monitoring_user"], p["applications"])
    current_users = {}
    for user in run("user", "list").split():
        current_users[user] = parse_user_roles(run("user", "get", user)) if user in desired["users"] else []
    existing_roles = set(run("role", "list").split())
    current_roles = {role: parse_role_grants(run("role", "get", role))
                     for role in desired["roles"] if role in existing_roles}

    steps = rbac_plan(current_users, current_roles, desired)
    if p["enabled"] and not enabled:
        steps.append(("enable authentication", ["auth", "enable"]))
    elif not p["enabled"] and enabled:
        steps.append(("disable authentication", ["auth", "disable"]))
        module.warn("etcd authentication is being turned off: every certificate from the CA becomes a full "
                    "client again (monitoring's and every application's included)")
    if not module.check_mode:
        for _description, args in steps:
            run(*args)
    unowned = sorted(r for r in existing_roles if r.startswith(APP_ROLE_PREFIX) and r not in desired["roles"])
    if unowned:
        module.warn("roles %s belong to applications no longer in etcd_rbac_applications; they were left in "
                    "place (delete them with etcdctl role delete when nothing uses them)" % ", ".join(unowned))
    module.exit_json(changed=bool(steps), changes=[d for d, _a in steps], auth_enabled=p["enabled"])


def auth_enabled(ctl: Etcdctl, endpoints: list, module: AnsibleModule) -> bool:
    enabled, error = probe_auth(ctl, endpoints)
    if enabled is None:
        module.fail_json(msg="could not tell whether etcd authentication is on: %s" % error)
    return bool(enabled)


if __name__ == "__main__":
    main()
