"""Every module documents itself well enough for ansible-doc (DOCUMENTATION, EXAMPLES, RETURN)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

MODULES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module):
    ansible_doc = shutil.which("ansible-doc")
    assert ansible_doc, "ansible-doc must be on PATH (make venv)"
    out = subprocess.run(
        [ansible_doc, "-M", str(Path(__file__).resolve().parents[2] / "plugins" / "modules"), "--json", module],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    doc = json.loads(out)[module]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip()
    assert doc["return"], "RETURN must describe the results"
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
