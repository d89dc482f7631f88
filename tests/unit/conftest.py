"""Make the repo's plugins importable in unit tests without any ansible.cfg.

``plugins/module_utils/*.py`` becomes ``ansible.module_utils.<name>``, the
name modules use at run time. Modules and filter plugins are loaded from
their files with :func:`load_plugin` (several share a file name, such as
plugins/modules/etcd_status.py and plugins/filter/etcd_status.py).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
MODULE_UTILS = PLUGINS / "module_utils"


def _alias_module_utils() -> None:
    try:
        import ansible.module_utils as mu  # the installed ansible-core
    except ImportError:
        # No ansible here (e.g. a bare Python 3.9 run of the pure tests):
        # build just enough of the package for module_utils imports.
        ansible = types.ModuleType("ansible")
        ansible.__path__ = []
        mu = types.ModuleType("ansible.module_utils")
        mu.__path__ = []
        ansible.module_utils = mu
        sys.modules.setdefault("ansible", ansible)
        sys.modules.setdefault("ansible.module_utils", mu)
    # Append, never prepend: the real ansible.module_utils.basic must win.
    if str(MODULE_UTILS) not in mu.__path__:
        mu.__path__.append(str(MODULE_UTILS))


_alias_module_utils()


def load_plugin(relpath: str, name: str) -> types.ModuleType:
    """Import a plugin file (e.g. ``modules/etcd_status.py``) under ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, PLUGINS / relpath)
    assert spec and spec.loader, relpath
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def plugin_loader():
    """``plugin_loader("filter/etcd_status.py", "etcd_status_filter")``."""
    return load_plugin
