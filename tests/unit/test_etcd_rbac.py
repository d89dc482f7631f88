"""RBAC: what the inventory declares, how etcdctl's answers are read, and the calls that follow."""
from __future__ import annotations

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_rbac as r

RESERVED = ("admin", "etcd-backup", "etcd-prometheus", "etcd-peer", "m1")
APPS = [
    {"name": "inventory", "prefixes": ["/inventory/"]},
    {"name": "billing", "prefixes": ["/billing/", {"prefix": "/inventory/", "permission": "read"}]},
]

# Printed by etcdctl 3.4.23 and 3.5.30 alike (checked against both binaries).
ROLE_GET = """Role app-billing
KV Read:
\t[/billing/, /billing0) (prefix /billing/)
\t[/inventory/, /inventory0) (prefix /inventory/)
\t/single
\t[a, c)
KV Write:
\t[/billing/, /billing0) (prefix /billing/)
"""


def test_declared_applications_pass():
    assert r.application_problems(APPS, RESERVED) == []


@pytest.mark.parametrize("apps, words", [
    ([{"name": "root", "prefixes": ["/x/"]}], "toolkit's own identity"),
    ([{"name": "etcd-backup", "prefixes": ["/x/"]}], "toolkit's own identity"),
    ([{"name": "a,b", "prefixes": ["/x/"]}], "becomes the certificate CN"),
    ([{"name": "a", "prefixes": ["/x/"]}, {"name": "a", "prefixes": ["/y/"]}], "listed twice"),
    ([{"name": "a", "prefixes": []}], "at least one key prefix"),
    ([{"name": "a", "prefixes": [""]}], "whole keyspace"),
    ([{"name": "a", "prefixes": [{"prefix": "/a/", "permission": "admin"}]}], "is not one of read, write, readwrite"),
    ([{"name": "a", "prefix": "/a/"}], "unknown keys prefix"),
    (["kube"], "must be a mapping"),
    ([{"name": "a", "prefixes": ["/a/", {"prefix": "/a/", "permission": "read"}]}], "'/a/' is listed more than once"),
    ([{"name": "etcd-peer", "prefixes": ["/x/"]}], "toolkit's own identity"),
    ([{"name": "m1", "prefixes": ["/x/"]}], "toolkit's own identity"),
])
def test_bad_applications_are_refused_with_a_fix(apps, words):
    problems = r.application_problems(apps, RESERVED)
    assert any(words in p for p in problems), problems


def test_desired_state_gives_root_only_where_etcd_insists():
    desired = r.desired_state("root", "etcd-backup", "etcd-prometheus", APPS)
    assert desired["users"] == {"root": ["root"], "etcd-backup": ["root"], "etcd-prometheus": [],
                                "inventory": ["app-inventory"], "billing": ["app-billing"]}
    # etcd enables auth only with a user named root: it exists whatever the admin CN is.
    assert r.desired_state("ops-admin", "b", "p", [])["users"]["root"] == ["root"]
    assert r.desired_state("ops-admin", "b", "p", [])["users"]["ops-admin"] == ["root"]
    assert r.Grant("/inventory/", "read") in desired["roles"]["app-billing"]


def test_role_and_user_output_is_read():
    assert r.parse_role_grants(ROLE_GET) == [
        ("readwrite", "/billing/", ""), ("read", "/inventory/", ""), ("read", "/single", None), ("read", "a", "c")]
    assert r.parse_user_roles("User: a\nRoles: app-a root\n") == ["app-a", "root"]
    # A range made by hand that etcdctl prints open-ended is never turned into a revoke.
    assert r.parse_role_grants("Role x\nKV Read:\n\t[k, <open ended>\n") == []
    assert r.parse_user_roles("User: root\nRoles:\n") == []


def test_fresh_cluster_plan_adds_roles_before_users():
    steps = r.plan({}, {}, r.desired_state("root", "etcd-backup", "etcd-prometheus", APPS))
    args = [a for _d, a in steps]
    assert args.index(["role", "add", "app-billing"]) < args.index(["user", "grant-role", "billing", "app-billing"])
    assert ["role", "grant-permission", "app-billing", "--prefix=true", "read", "/inventory/"] in args
    assert ["user", "add", "etcd-prometheus", "--no-password"] in args
    assert not any(a[:2] == ["user", "grant-role"] and a[2] == "etcd-prometheus" for a in args)


def test_converged_cluster_plans_nothing():
    current_users = {"root": ["root"], "etcd-backup": ["root"], "etcd-prometheus": [],
                     "inventory": ["app-inventory"], "billing": ["app-billing"], "someone": ["custom"]}
    current_roles = {"app-inventory": [("readwrite", "/inventory/", "")],
                     "app-billing": [("readwrite", "/billing/", ""), ("read", "/inventory/", "")]}
    desired = r.desired_state("root", "etcd-backup", "etcd-prometheus", APPS)
    assert r.plan(current_users, current_roles, desired) == []


def test_changed_permissions_are_set_exactly_and_hand_made_grants_stay():
    current_users = {"root": ["root"], "etcd-backup": ["root"], "etcd-prometheus": [],
                     "inventory": ["app-inventory", "app-billing", "ops-extra"], "billing": ["app-billing"]}
    current_roles = {"app-inventory": [("read", "/inventory/", ""), ("readwrite", "/old/", "")],
                     "app-billing": [("readwrite", "/billing/", ""), ("read", "/inventory/", "")]}
    desired = r.desired_state("root", "etcd-backup", "etcd-prometheus", APPS)
    args = [a for _d, a in r.plan(current_users, current_roles, desired)]
    assert args == [
        ["role", "grant-permission", "app-inventory", "--prefix=true", "readwrite", "/inventory/"],
        ["role", "revoke-permission", "app-inventory", "/old/", "--prefix=true"],
        ["user", "revoke-role", "inventory", "app-billing"],
    ]
