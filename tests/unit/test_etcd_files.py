"""etcd_files: one pass over a role's folders, files and links; nothing an operator owns is deleted."""
from __future__ import annotations

import datetime as dt
import os

import pytest

from conftest import load_plugin

files = load_plugin("module_utils/etcd_files.py")
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc)


def tree(tmp_path, unit="[Unit]\nDescription=x"):
    return [
        {"path": str(tmp_path / "etc"), "state": "directory", "mode": "0750"},
        {"path": str(tmp_path / "etc/unit.service"), "content": unit, "mode": "0644"},
        {"path": str(tmp_path / "etc/secret.json"), "content": "{}", "mode": "0600"},
        {"path": str(tmp_path / "bin-etcd"), "state": "link", "src": "/opt/etcd/v3.5.30/etcd"},
    ]


def test_first_pass_creates_everything_and_a_second_changes_nothing(tmp_path):
    first = files.apply(tree(tmp_path))
    assert len(first.changed) == 4
    assert oct((tmp_path / "etc").stat().st_mode & 0o777) == "0o750"
    assert oct((tmp_path / "etc/secret.json").stat().st_mode & 0o777) == "0o600"
    assert (tmp_path / "etc/unit.service").read_text() == "[Unit]\nDescription=x\n"
    assert os.readlink(tmp_path / "bin-etcd") == "/opt/etcd/v3.5.30/etcd"
    assert files.apply(tree(tmp_path)).changed == []


def test_check_mode_reports_and_writes_nothing(tmp_path):
    plan = files.apply(tree(tmp_path), check=True, want_diff=True)
    assert len(plan.changed) == 4 and list(tmp_path.iterdir()) == []
    assert {d["after_header"] for d in plan.diff} == {str(tmp_path / "etc/unit.service"),
                                                      str(tmp_path / "etc/secret.json"), str(tmp_path / "bin-etcd")}


def test_only_what_differs_is_rewritten_with_a_diff(tmp_path):
    files.apply(tree(tmp_path))
    os.chmod(tmp_path / "etc/secret.json", 0o644)
    again = files.apply(tree(tmp_path, unit="[Unit]\nDescription=y\n"), want_diff=True)
    assert again.changed == [str(tmp_path / "etc/unit.service"), str(tmp_path / "etc/secret.json")]
    assert again.diff == [{"before_header": str(tmp_path / "etc/unit.service"),
                           "after_header": str(tmp_path / "etc/unit.service"),
                           "before": "[Unit]\nDescription=x\n", "after": "[Unit]\nDescription=y\n"}]
    assert oct((tmp_path / "etc/secret.json").stat().st_mode & 0o777) == "0o600"


def test_a_file_where_a_link_belongs_is_moved_aside_not_deleted(tmp_path):
    (tmp_path / "bin-etcd").write_text("an operator's own etcd")
    out = files.apply(tree(tmp_path)[3:], now=NOW)
    aside = tmp_path / "bin-etcd.replaced-20261125T120000Z"
    assert out.moved_aside == [str(aside)] and aside.read_text() == "an operator's own etcd"
    assert os.readlink(tmp_path / "bin-etcd") == "/opt/etcd/v3.5.30/etcd"


@pytest.mark.parametrize("make, item", [
    (lambda p: p.mkdir(), {"content": "x"}),
    (lambda p: p.write_text("x"), {"state": "directory"}),
])
def test_a_folder_where_a_file_belongs_and_the_reverse_are_refused(tmp_path, make, item):
    make(tmp_path / "thing")
    with pytest.raises(files.FilesError, match="move it away first"):
        files.apply([dict(item, path=str(tmp_path / "thing"))])


def test_an_unknown_account_is_refused_but_assumed_in_check_mode(tmp_path):
    item = [{"path": str(tmp_path / "f"), "content": "x", "owner": "no-such-account-here"}]
    with pytest.raises(files.FilesError, match="no-such-account-here"):
        files.apply(item)
    assert files.apply(item, check=True).changed == [str(tmp_path / "f")]
