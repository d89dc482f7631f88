"""Each role documents exactly the variables it defaults, and its defaults match the spec."""
from __future__ import annotations

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
