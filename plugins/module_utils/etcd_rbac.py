# -*- coding: utf-8 -*-
"""etcd RBAC: the users and roles the toolkit declares, compared with what etcd holds.

With client-cert-auth and auth on, a client certificate's CN is its etcd user name. Users
made here have no password, so only a certificate from the cluster's CA can act as them.
The toolkit owns the roles it names (``app-<user>``): their permissions are set exactly.
Users and roles it does not declare are never removed (an operator may have made them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

PERMISSIONS = ("read", "write", "readwrite")
ROOT_ROLE = "root"
APP_ROLE_PREFIX = "app-"
# Safe as a certificate CN, an etcd user name, a role name and a file name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Grant:
    """One permission of a role: a key, or every key under a prefix."""

    key: str
    permission: str  # read, write or readwrite
    prefix: bool = True

    def describe(self) -> str:
        return "%s %s%s" % (self.permission, self.key, " (prefix)" if self.prefix else "")


def _grants_of(entry: Mapping[str, Any]) -> List[Grant]:
    grants = []
    for item in entry.get("prefixes") or []:
        if isinstance(item, str):
            grants.append(Grant(item, "readwrite"))
        else:
            grants.append(Grant(str(item.get("prefix", "")), str(item.get("permission", "readwrite"))))
    return grants


def application_problems(applications: Sequence[Mapping[str, Any]], reserved: Iterable[str]) -> List[str]:
    """etcd_rbac_applications entries that cannot be applied, each with its fix."""
    problems: List[str] = []
    reserved = set(reserved) | {"root"}
    seen = set()
    for index, entry in enumerate(applications or []):
        if not isinstance(entry, Mapping):
            problems.append("etcd_rbac_applications[%d] must be a mapping with name and prefixes" % index)
            continue
        name = str(entry.get("name", ""))
        where = "etcd_rbac_applications[%d] (%r)" % (index, name)
        if not NAME_RE.match(name):
            problems.append("%s: the name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                            "or digit (it becomes the certificate CN, the etcd user and a file name)" % where)
        elif name in reserved:
            problems.append("%s: %s is the toolkit's own identity (admin, backup, monitoring, peer or a member): "
                            "pick another name for the application" % (where, name))
        elif name in seen:
            problems.append("%s: the name is listed twice: merge the entries" % where)
        seen.add(name)
        unknown = sorted(set(entry) - {"name", "prefixes"})
        if unknown:
            problems.append("%s: unknown keys %s: only name and prefixes are read" % (where, ", ".join(unknown)))
        if not entry.get("prefixes"):
            problems.append("%s: list at least one key prefix under prefixes (for example /registry/): "
                            "an application user without permissions can read nothing" % where)
            continue
        keys = [g.key for g in _grants_of(entry)]
        for key in sorted({k for k in keys if keys.count(k) > 1}):
            problems.append("%s: prefix %r is listed more than once: keep one entry with the permission it needs"
                            % (where, key))
        for grant in _grants_of(entry):
            if grant.key == "":
                problems.append("%s: an empty prefix would give the whole keyspace: name the application's "
                                "own prefix, for example /%s/" % (where, name))
            if grant.permission not in PERMISSIONS:
                problems.append("%s: permission %r for prefix %r is not one of %s"
                                % (where, grant.permission, grant.key, ", ".join(PERMISSIONS)))
    return problems


def desired_state(admin: str, backup: str, monitoring: str,
                  applications: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Users (name -> roles) and toolkit roles (name -> grants) the cluster should hold.

    etcd insists on the root role for maintenance calls (Snapshot, Status, Defragment, ...),
    so the backup identity holds it; monitoring reads /metrics, which RBAC does not guard,
    and gets no role at all.
    """
    # etcd enables auth only with a user literally named root holding the root role.
    users: Dict[str, List[str]] = {"root": [ROOT_ROLE], admin: [ROOT_ROLE], backup: [ROOT_ROLE], monitoring: []}
    roles: Dict[str, List[Grant]] = {}
    for entry in applications or []:
        role = APP_ROLE_PREFIX + str(entry["name"])
        users[str(entry["name"])] = [role]
        roles[role] = sorted(set(_grants_of(entry)), key=lambda g: (g.key, g.prefix))
    return {"users": users, "roles": roles}


# --------------------------------------------------------------------------
# Reading etcdctl's plain output (its JSON for user/role get carries no data)
# --------------------------------------------------------------------------

def parse_user_roles(text: str) -> List[str]:
    """Roles from `etcdctl user get NAME` ('User: a' / 'Roles: r1 r2')."""
    for line in text.splitlines():
        if line.startswith("Roles:"):
            return line[len("Roles:"):].split()
    return []


_RANGE = re.compile(r"^\[(?P<key>.*?), (?P<end>.*?)\)(?: \(prefix (?P<prefix>.*)\))?$")


def parse_role_grants(text: str) -> List[Tuple[str, str, Optional[str]]]:
    """(permission, key, range_end or None) from `etcdctl role get NAME`.

    A prefix comes back with range_end '' meaning "prefix" (etcdctl prints '(prefix K)').
    Read and write lines for the same key merge into readwrite.
    """
    section = ""
    seen: Dict[Tuple[str, Optional[str]], set] = {}
    order: List[Tuple[str, Optional[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line == "KV Read:":
            section = "read"
            continue
        if line == "KV Write:":
            section = "write"
            continue
        if not section or not line or not raw.startswith(("\t", " ")):
            continue
        match = _RANGE.match(line)
        if line.startswith("[") and not match:
            continue  # an open-ended range made by hand ('[k, <open ended>'): left alone, never revoked
        if match and match.group("prefix") is not None:
            ident: Tuple[str, Optional[str]] = (match.group("prefix"), "")
        elif match:
            ident = (match.group("key"), match.group("end"))
        else:
            ident = (line, None)
        if ident not in seen:
            seen[ident] = set()
            order.append(ident)
        seen[ident].add(section)
    result = []
    for ident in order:
        kinds = seen[ident]
        permission = "readwrite" if kinds == {"read", "write"} else kinds.pop()
        result.append((permission, ident[0], ident[1]))
    return result


# --------------------------------------------------------------------------
# Plan: the etcdctl calls that bring etcd to the desired state
# --------------------------------------------------------------------------

def plan(current_users: Mapping[str, Sequence[str]], current_roles: Mapping[str, Sequence[Tuple[str, str, Optional[str]]]],
         desired: Mapping[str, Any]) -> List[Tuple[str, List[str]]]:
    """(description, etcdctl arguments) in a safe order; empty when nothing differs.

    current_users: every existing user -> its roles; current_roles: the toolkit roles that
    exist -> their grants (parse_role_grants). Roles come before the users granted them.
    """
    steps: List[Tuple[str, List[str]]] = []
    for role, grants in sorted(desired["roles"].items()):
        have = list(current_roles.get(role, []))
        if role not in current_roles:
            steps.append(("add role %s" % role, ["role", "add", role]))
        wanted = {(g.key, "" if g.prefix else None): g for g in grants}
        have_by_key = {(key, end): perm for perm, key, end in have}
        for ident, grant in sorted(wanted.items(), key=lambda kv: (kv[0][0], kv[0][1] is None)):
            if have_by_key.get(ident) == grant.permission:
                continue
            args = ["role", "grant-permission", role]
            args += (["--prefix=true"] if grant.prefix else []) + [grant.permission, grant.key]
            steps.append(("grant %s %s" % (role, grant.describe()), args))
        for perm, key, end in have:
            if (key, end) in wanted:
                continue
            args = ["role", "revoke-permission", role, key]
            if end == "":
                args.append("--prefix=true")
            elif end is not None:
                args.append(end)
            steps.append(("revoke from %s: %s %s (no longer declared)" % (role, perm, key), args))
    for user, roles in sorted(desired["users"].items()):
        if user not in current_users:
            steps.append(("add user %s (certificate only, no password)" % user, ["user", "add", user, "--no-password"]))
        have_roles = set(current_users.get(user, []))
        for role in roles:
            if role not in have_roles:
                steps.append(("grant role %s to user %s" % (role, user), ["user", "grant-role", user, role]))
        # Only toolkit roles are taken back; a role an operator granted by hand stays.
        for role in sorted(have_roles - set(roles)):
            if role.startswith(APP_ROLE_PREFIX) and role in desired["roles"]:
                steps.append(("revoke role %s from user %s" % (role, user), ["user", "revoke-role", user, role]))
    return steps
