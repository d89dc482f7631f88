"""This scenario runs the built artifact: `make collection` built it with `ansible-galaxy
collection build` and installed it with `ansible-galaxy collection install`, and converge ran
controlplane.etcd.site from that installed copy, not from the checkout."""
from __future__ import annotations

import json
import os
import subprocess

import harness
from conftest import MEMBERS

INSTALL = harness.PROJECT / ".cache" / "collection-install"
TREE = INSTALL / "ansible_collections" / "controlplane" / "etcd"


def test_only_the_installed_artifact_answers_to_the_collection_name():
    assert str(harness.PROJECT / "collections") not in os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":")
    listed = subprocess.run(["ansible-galaxy", "collection", "list", "controlplane.etcd", "--format", "json"],
                            capture_output=True, text=True, check=True, cwd="/").stdout
    found = {path: names for path, names in json.loads(listed).items() if "controlplane.etcd" in names}
    assert list(found) == [str(INSTALL / "ansible_collections")], found
    manifest = json.loads((TREE / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("controlplane", "etcd")


def test_the_artifact_ships_the_toolkit_and_nothing_of_the_workshop():
    for shipped in ("playbooks/site.yml", "roles/etcd_member/tasks/main.yml", "plugins/modules/etcd_status.py",
                    "plugins/module_utils/etcd_status.py", "meta/runtime.yml", "README.md"):
        assert (TREE / shipped).is_file(), shipped
    for left_out in ("molecule", "tests", "lab", "bench", ".cache", ".lab", "collections", "Makefile", "ansible.cfg"):
        assert not (TREE / left_out).exists(), left_out


def test_status_playbook_from_the_installed_collection(tmp_path):
    result = harness.run_site(tmp_path, {m: {} for m in MEMBERS}, playbook="status")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "health:   HEALTHY" in result.stdout
    assert all(name in result.stdout for name in MEMBERS)
