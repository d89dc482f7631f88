"""Each role documents exactly the variables it defaults, and its defaults match the spec."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())
# Required variables have no default on purpose (for example the CA passphrase).


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_specs_list_the_same_keys(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    optional = {k for k, v in options.items() if not v.get("required")}
    assert set(defaults) == optional, (
        "%s: only in defaults %s, only in argument_specs %s"
        % (role.name, sorted(set(defaults) - optional), sorted(optional - set(defaults)))
    )
    for key, value in defaults.items():
        assert options[key].get("default") == value, "%s.%s default differs" % (role.name, key)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_public_variables_carry_the_role_prefix(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    assert all(key.startswith("etcd_") for key in defaults)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_entry_point_agrees_with_the_defaults(role):
    """Entry points besides main (etcd_pki's issue) repeat some options; they must not drift."""
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for entry, spec in specs.items():
        assert (role / "tasks" / ("%s.yml" % entry)).is_file(), "%s: entry point %s has no tasks file" % (role.name, entry)
        for key, option in spec.get("options", {}).items():
            if key in defaults:
                assert option.get("default") == defaults[key], "%s:%s.%s default differs" % (role.name, entry, key)
            elif not option.get("required"):
                assert not key.startswith("etcd_"), "%s:%s.%s has no default" % (role.name, entry, key)


def test_messages_name_playbooks_that_exist():
    """A refusal that tells the operator to run a playbook must name one that ships."""
    repo = Path(__file__).resolve().parents[2]
    shipped = {p.stem for p in (repo / "playbooks").glob("*.yml")}
    named = set()
    for folder in ("roles", "playbooks", "plugins"):
        for path in (repo / folder).rglob("*"):
            if path.is_file() and path.suffix in (".yml", ".j2", ".py", ""):
                text = path.read_text(errors="replace")
                named |= {(m, path.relative_to(repo)) for m in re.findall(r"playbooks/([a-z0-9_-]+)\.yml", text)}
                named |= {(m, path.relative_to(repo)) for m in re.findall(r"controlplane\.etcd\.([a-z0-9_-]+)\b", text)
                          if (repo / "playbooks" / (m + ".yml")).exists() or "-" in m}
    missing = sorted((name, str(where)) for name, where in named if name not in shipped)
    assert not missing, "messages name playbooks that do not exist: %s" % missing
