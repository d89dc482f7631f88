"""Every module documents itself well enough for ansible-doc (DOCUMENTATION, EXAMPLES, RETURN)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    # Prefer the ansible-doc installed beside this Python (the project venv).
    beside = Path(sys.executable).with_name("ansible-doc")
    ansible_doc = str(beside) if beside.exists() else shutil.which("ansible-doc")
    assert ansible_doc, "ansible-doc is missing: run make venv"
    name = "controlplane.etcd." + module  # as operators and playbooks call it
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"))
    out = subprocess.run([ansible_doc, "--json", name], capture_output=True, text=True, check=True,
                         timeout=120, env=env, cwd="/").stdout
    doc = json.loads(out)[name]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip()
    assert doc["return"], "RETURN must describe the results"
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
