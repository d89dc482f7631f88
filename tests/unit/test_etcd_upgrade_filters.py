"""Controller-side filters of the upgrade role (plugins/filter/etcd_upgrade.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.controlplane.etcd.plugins.filter import etcd_upgrade as f


NAMES = ["m1", "m2", "m3"]


def _status(*versions: str, auth=False) -> dict:
    """etcd_status's status with the auth probe's answer (the module adds auth_enabled)."""
    members = [{"name": "m%d" % i, "version": v} for i, v in enumerate(versions, 1)]
    return {"members": members, "auth_enabled": auth}


def test_an_allowed_upgrade_has_no_problems():
    assert f.etcd_upgrade_problems("3.5.30", _status("3.5.16", "3.5.16", "3.5.16", auth=True), {}, NAMES) == []


def test_unknown_auth_state_is_a_problem():
    problems = f.etcd_upgrade_problems("3.5.30", _status("3.5.16", "3.5.16", "3.5.16", auth=None), {}, NAMES)
    assert len(problems) == 1 and problems[0].startswith("could not tell whether authentication is on")


def test_34_with_auth_on_is_refused():
    problems = f.etcd_upgrade_problems("3.5.30", _status("3.4.23", "3.4.23", "3.4.23", auth=True), {}, NAMES)
    assert len(problems) == 1 and "3.4 -> 3.5 with authentication on is not supported" in problems[0]
    assert f.etcd_upgrade_problems("3.5.30", _status("3.4.23", "3.4.23", "3.4.23", auth=False), {}, NAMES) == []


def test_a_downgrade_is_named():
    problems = f.etcd_upgrade_problems("3.5.16", _status("3.5.30", "3.5.30", "3.5.30"), {}, NAMES)
    assert len(problems) == 1 and problems[0].startswith("3.5.30 -> 3.5.16 is a downgrade")


def test_a_skipped_minor_is_named():
    problems = f.etcd_upgrade_problems("3.6.0", _status("3.4.23", "3.4.23", "3.4.23"), {}, NAMES)
    assert len(problems) == 1 and problems[0].startswith("3.4.23 -> 3.6.0 skips a minor version")


def test_removed_extra_keys_are_added_to_the_path_problems():
    problems = f.etcd_upgrade_problems("3.6.0", _status("3.5.32", "3.5.32", "3.5.32"), {"enable-v2": False}, NAMES)
    assert len(problems) == 1 and "enable-v2" in problems[0] and "etcd_config_extra" in problems[0]


@pytest.mark.parametrize("status", [{}, None, {"members": [{"name": "m1", "version": ""}], "auth_enabled": False}])
def test_no_member_version_is_refused(status):
    assert f.etcd_upgrade_problems("3.5.30", status, {}, NAMES) == [
        "no member reported its version: an upgrade needs a running, healthy cluster (playbooks/status.yml)"]


def test_an_unusable_target_is_left_to_preflight():
    assert f.etcd_upgrade_problems("3.9.9", _status("3.5.30"), {}, NAMES) == []


def test_wrappers_accept_what_templates_pass():
    status = {"members": [{"name": "m2", "healthy": True, "reachable": True, "raft_applied_index": 19,
                           "version": "3.5.30"}], "leader": {"name": "m2"}}
    assert f.etcd_member_check(status, "m2", "19", "3.5.30") == []
    assert f.etcd_member_check(status, "m2", "20", None) == [
        "m2 has applied index 19, behind the 20 the leader had applied before it restarted"]
    assert f.etcd_rollback_allowed("3.4.23", "3.5.30", None) is False
    assert f.etcd_rollback_allowed("3.4.23", "3.5.30", "3.4.0") is True
    plan = f.etcd_upgrade_plan(("h1", "h2"), {"h1": "m1", "h2": "m2"},
                               {"members": [{"name": "m1", "version": "3.5.16"}, {"name": "m2", "version": "3.5.16"}],
                                "leader": {"name": "m1"}, "voting_members": 2, "quorum": 2}, "3.5.30")
    assert plan["order"] == ["h2", "h1"] and plan["quorum_margin"] == 0


def test_link_back_points_the_link_at_the_previous_release():
    result = {"item": {"path": "/usr/local/bin/etcd", "state": "link", "src": "/opt/etcd/v3.5.30/etcd"},
              "stat": {"exists": True, "path": "/opt/etcd/v3.5.16/etcd"}}
    assert f.etcd_link_back(result) == {"path": "/usr/local/bin/etcd", "state": "link",
                                        "src": "/opt/etcd/v3.5.16/etcd"}


def test_delta_seconds():
    assert f.etcd_delta_seconds("0:00:01.234567") == 1.23
    assert f.etcd_delta_seconds("1:02:03.5") == 3723.5
    assert f.etcd_delta_seconds(None) == 0.0


REPORT = Path(__file__).resolve().parents[2] / "roles" / "etcd_upgrade" / "tasks" / "report.yml"


def test_turn_row_lines_up_under_the_report_header():
    header = re.search(r"'(HOST .*NO-LEADER\(s\))'", REPORT.read_text()).group(1)
    turn = {"host": "etcd-1", "member": "m1", "from": "3.5.16", "to": "3.5.30", "seconds": 41.5,
            "move_leader_seconds": 0.07, "leaderless_seconds": 0.35, "led_before": True}
    row = f.etcd_turn_row(turn)
    for label, value in (("HOST", "etcd-1"), ("MEMBER", "m1"), ("FROM", "3.5.16"), ("TO ", "3.5.30")):
        assert row.index(value) == header.index(label), label  # left-aligned columns
    for label, value in (("SECONDS", "41.5"), ("MOVE-LEADER(s)", "0.07"), ("NO-LEADER(s)", "0.35")):
        assert row.index(value) + len(value) == header.index(label) + len(label), label  # right-aligned
    # A follower did not hand over leadership: no move-leader time.
    assert f.etcd_turn_row(dict(turn, led_before=False)).split()[5] == "-"


def test_filter_module_lists_every_filter():
    assert f.FilterModule().filters() == {
        "etcd_upgrade_problems": f.etcd_upgrade_problems,
        "etcd_upgrade_plan": f.etcd_upgrade_plan,
        "etcd_member_check": f.etcd_member_check,
        "etcd_rollback_allowed": f.etcd_rollback_allowed,
        "etcd_link_back": f.etcd_link_back,
        "etcd_turn_row": f.etcd_turn_row,
        "etcd_delta_seconds": f.etcd_delta_seconds,
    }


def test_a_member_outside_the_inventory_or_no_quorum_margin_is_refused():
    status = dict(_status("3.5.16", "3.5.16", "3.5.16"), voting_members=3, quorum=2)
    strangers = f.etcd_upgrade_problems("3.5.30", status, {}, ["m1", "m2"])
    assert len(strangers) == 1 and "members the inventory does not list (m3)" in strangers[0]
    two = dict(_status("3.5.16", "3.5.16"), voting_members=2, quorum=2)
    assert "no quorum margin" in f.etcd_upgrade_problems("3.5.30", two, {}, ["m1", "m2"])[0]
    assert f.etcd_upgrade_problems("3.5.30", two, {}, ["m1", "m2"], True) == []


def test_no_roll_back_across_a_minor_step_for_the_last_member():
    assert f.etcd_rollback_allowed("3.4.23", "3.5.30", "3.4.0") is True
    assert f.etcd_rollback_allowed("3.4.23", "3.5.30", "3.4.0", True) is False
    assert f.etcd_rollback_allowed("3.5.16", "3.5.30", "", True) is True
