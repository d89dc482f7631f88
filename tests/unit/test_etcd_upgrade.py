"""Upgrade-path rules, including 3.5 -> 3.6 (no 3.6 binary here: key lists from tests/reference)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_config
from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_upgrade as u
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import Etcdctl

FLAGS = Path(__file__).resolve().parents[1] / "reference" / "etcd-flags"


@pytest.mark.parametrize("current, target, kind", [
    ("3.5.16", "3.5.16", "none"), ("3.5.16", "3.5.30", "patch"), ("3.4.23", "3.5.30", "minor"),
    ("3.5.32", "3.6.0", "minor"), ("3.4.23", "3.6.0", "refused"), ("3.5.30", "3.5.16", "refused"),
    ("3.6.0", "3.5.32", "refused"),
])
def test_kinds(current, target, kind):
    assert u.upgrade_kind(current, target) == kind


@pytest.mark.parametrize("current, target, auth", [
    (["3.5.16"] * 3, "3.5.30", True),
    (["3.4.23"] * 3, "3.5.30", False),
    (["3.5.32"] * 3, "3.6.14", True),
    (["3.5.30", "3.5.30", "3.5.16"], "3.5.30", True),  # a re-run resumes
    (["3.5.30"] * 3, "3.5.30", True),                  # nothing left to do
])
def test_allowed_paths(current, target, auth):
    assert u.path_problems(current, target, auth) == []


@pytest.mark.parametrize("current, target, auth, words", [
    (["3.4.23"] * 3, "3.6.0", False, ["skips a minor version", "newest 3.5 release first"]),
    (["3.5.30"] * 3, "3.5.16", False, ["is a downgrade", "restore the snapshot"]),
    (["3.6.2"] * 3, "3.5.32", False, ["is a downgrade", "etcdctl downgrade validate/enable"]),
    (["3.4.23"] * 3, "3.5.30", True, ["authentication on is not supported upstream", "etcd_rbac_enabled: false"]),
    (["3.5.30"] * 3, "3.6.0", False, ["requires 3.5.32 or newer before 3.6", "upgrade to 3.5.32+ first"]),
    (["3.5.16", "3.5.30", "3.5.30"], "3.6.0", False, ["members run different versions (3.5.16, 3.5.30)"]),
])
def test_refused_paths_name_the_reason_and_the_way_out(current, target, auth, words):
    problems = u.path_problems(current, target, auth)
    assert problems and all(any(w in p for p in problems) for w in words), problems


def _keys(name: str) -> set:
    return {line.strip() for line in (FLAGS / name).read_text().splitlines() if line.strip()}


def _settings() -> dict:
    return {"name": "m1", "address": "10.0.0.1", "data_dir": "/var/lib/etcd", "pki_dir": "/etc/etcd/pki",
            "initial_cluster": "m1=https://10.0.0.1:2380", "initial_cluster_token": "t",
            "heartbeat_interval": 100, "election_timeout": 1000, "peer_allowed_cn": "etcd-peer",
            "listen_metrics_urls": ["https://10.0.0.1:2381"]}


def test_the_configuration_rendered_for_36_has_no_key_36_removed():
    config = etcd_config.render(_settings(), "3.6.0")
    assert u.removed_keys(config, _keys("config-file-keys-3.6.0.txt")) == []


def test_an_extra_key_36_removed_is_found_before_the_upgrade():
    # enable-v2 is gone in 3.6 (upgrade_3_6.md: remove it before upgrading).
    config = etcd_config.render(dict(_settings(), extra={"enable-v2": False}), "3.6.0")
    assert u.removed_keys(config, _keys("config-file-keys-3.6.0.txt")) == ["enable-v2"]
    assert u.removed_keys(etcd_config.render(dict(_settings(), extra={"enable-v2": False}), "3.5.30"),
                          _keys("config-file-keys-3.5.33.txt")) == []


# --------------------------------------------------------------------------
# Keys a minor release removed
# --------------------------------------------------------------------------

@pytest.mark.parametrize("minor, before, after", [
    ("3.5", "config-file-keys-3.4.23.txt", "config-file-keys-3.5.33.txt"),
    ("3.6", "config-file-keys-3.5.33.txt", "config-file-keys-3.6.0.txt"),
])
def test_removed_keys_are_the_reference_lists_difference(minor, before, after):
    listed = u.REMOVED_KEYS[minor]
    assert len(listed) == len(set(listed))
    assert set(listed) == _keys(before) - _keys(after)


def test_removed_keys_cover_only_the_minors_with_reference_lists():
    assert set(u.REMOVED_KEYS) == {"3.5", "3.6"}


def test_enable_v2_in_the_extra_settings_is_refused_for_36_only():
    problems = u.extra_key_problems({"enable-v2": False, "quota-backend-bytes": 1}, "3.6.0")
    assert len(problems) == 1
    assert "enable-v2" in problems[0] and "etcd_config_extra" in problems[0] and "3.6.0" in problems[0]
    assert "quota-backend-bytes" not in problems[0]
    assert u.extra_key_problems({"enable-v2": False}, "3.5.30") == []


def test_log_output_in_the_extra_settings_is_refused_for_35():
    problems = u.extra_key_problems({"log-output": "stderr"}, "3.5.30")
    assert len(problems) == 1 and "log-output" in problems[0] and "etcd_config_extra" in problems[0]


def test_several_removed_extra_keys_are_named_in_one_problem():
    problems = u.extra_key_problems({"experimental-enable-v2v3": "/v2", "enable-v2": True}, "3.6.0")
    assert len(problems) == 1 and "enable-v2, experimental-enable-v2v3" in problems[0]
    assert "drop them" in problems[0]


@pytest.mark.parametrize("extra", [{}, None])
def test_no_extra_settings_are_fine(extra):
    assert u.extra_key_problems(extra, "3.6.0") == []
    assert u.extra_key_problems(extra, "3.5.30") == []


# --------------------------------------------------------------------------
# Plan: order, skipped members, leader, quorum margin
# --------------------------------------------------------------------------

def _cluster(versions: dict, leader: str = "m1", voters: int = 3, quorum: int = 2) -> dict:
    """etcd_status's status, reduced to what plan() reads."""
    members = [{"name": n, "version": v, "is_leader": n == leader, "healthy": True} for n, v in versions.items()]
    return {"members": members, "leader": {"name": leader} if leader else None,
            "voting_members": voters, "quorum": quorum}


HOSTS = ["h1", "h2", "h3"]
NAMES = {"h1": "m1", "h2": "m2", "h3": "m3"}


def test_plan_upgrades_followers_in_inventory_order_then_the_leader():
    status = _cluster({"m1": "3.5.16", "m2": "3.5.16", "m3": "3.5.16"}, leader="m1")
    p = u.plan(HOSTS, NAMES, status, "3.5.30")
    assert p == {"order": ["h2", "h3", "h1"], "skipped": [], "leader": "h1", "leader_moves": True,
                 "quorum_margin": 1, "voters": 3, "quorum": 2}


def test_plan_skips_members_on_the_target_and_keeps_a_five_member_margin_of_two():
    hosts = ["h1", "h2", "h3", "h4", "h5"]
    names = {h: "m" + h[1:] for h in hosts}
    status = _cluster({"m1": "3.5.16", "m2": "3.5.16", "m3": "3.5.30", "m4": "3.5.16", "m5": "3.5.16"},
                      leader="m2", voters=5, quorum=3)
    p = u.plan(hosts, names, status, "3.5.30")
    assert p["order"] == ["h1", "h4", "h5", "h2"] and p["skipped"] == ["h3"]
    assert (p["leader"], p["leader_moves"], p["quorum_margin"]) == ("h2", True, 2)


def test_plan_leader_already_on_the_target_does_not_move():
    status = _cluster({"m1": "3.5.30", "m2": "3.5.16", "m3": "3.5.16"}, leader="m1")
    p = u.plan(HOSTS, NAMES, status, "3.5.30")
    assert p["order"] == ["h2", "h3"] and p["skipped"] == ["h1"]
    assert p["leader"] == "h1" and p["leader_moves"] is False


def test_plan_has_nothing_to_do_when_every_member_runs_the_target():
    status = _cluster({"m1": "3.5.30", "m2": "3.5.30", "m3": "3.5.30"}, leader="m3")
    p = u.plan(HOSTS, NAMES, status, "3.5.30")
    assert p["order"] == [] and p["skipped"] == HOSTS and p["leader_moves"] is False


def test_plan_without_a_leader_keeps_inventory_order():
    status = _cluster({"m1": "3.5.16", "m2": "3.5.16", "m3": "3.5.16"}, leader="")
    p = u.plan(HOSTS, NAMES, status, "3.5.30")
    assert p["order"] == HOSTS and p["leader"] == "" and p["leader_moves"] is False


def test_plan_single_member_has_no_margin_and_no_leader_move():
    status = _cluster({"m1": "3.5.16"}, leader="m1", voters=1, quorum=1)
    p = u.plan(["h1"], NAMES, status, "3.5.30")
    assert p["order"] == ["h1"] and p["leader_moves"] is False and p["quorum_margin"] == 0


# --------------------------------------------------------------------------
# member_check: when a restarted member's turn is over
# --------------------------------------------------------------------------

def _checked(leader: bool = True, **m2) -> dict:
    member = dict({"name": "m2", "healthy": True, "reachable": True, "errors": [], "raft_applied_index": 19,
                   "version": "3.5.30", "is_leader": False}, **m2)
    other = {"name": "m1", "healthy": True, "reachable": True, "errors": [], "raft_applied_index": 19,
             "version": "3.5.30", "is_leader": True}
    return {"members": [other, member], "leader": {"name": "m1"} if leader else None}


def test_a_healthy_caught_up_member_on_the_version_is_done():
    assert u.member_check(_checked(), "m2", 19, "3.5.30") == []
    assert u.member_check(_checked(), "m2", 12, "3.5.30") == []


def test_an_empty_version_accepts_any_version():
    assert u.member_check(_checked(version="3.5.16"), "m2", 19, "") == []


@pytest.mark.parametrize("status, expected", [
    (_checked(healthy=False, errors=["etcdserver: no leader", "alarm:NOSPACE"]),
     ["m2 is not healthy (etcdserver: no leader; alarm:NOSPACE)"]),
    (_checked(healthy=False, errors=[]), ["m2 is not healthy (no answer)"]),
    (_checked(raft_applied_index=12),
     ["m2 has applied index 12, behind the 19 the leader had applied before it restarted"]),
    (_checked(version="3.5.16"), ["m2 reports version 3.5.16, not 3.5.30"]),
    (_checked(leader=False), ["the cluster has no leader"]),
])
def test_each_failing_check_is_named(status, expected):
    assert u.member_check(status, "m2", 19, "3.5.30") == expected


def test_several_failing_checks_are_all_named():
    status = _checked(leader=False, healthy=False, errors=["x"], raft_applied_index=3, version="3.5.16")
    assert u.member_check(status, "m2", 19, "3.5.30") == [
        "m2 is not healthy (x)",
        "m2 has applied index 3, behind the 19 the leader had applied before it restarted",
        "m2 reports version 3.5.16, not 3.5.30",
        "the cluster has no leader",
    ]


def test_a_member_missing_from_the_list_is_named():
    assert u.member_check(_checked(), "m9", 0, "") == ["m9 is not in the member list"]
    assert u.member_check({}, "m2", 0, "") == ["m2 is not in the member list"]


# --------------------------------------------------------------------------
# rollback_allowed
# --------------------------------------------------------------------------

@pytest.mark.parametrize("previous, target, cluster_version, allowed", [
    ("3.5.16", "3.5.30", "3.5.0", True),
    ("3.5.16", "3.5.30", "", True),        # a patch keeps the data format
    ("3.4.23", "3.5.30", "3.4.0", True),   # the cluster still speaks 3.4
    ("3.4.23", "3.5.30", "3.5.0", False),  # every member moved up: old data format is gone
    ("3.4.23", "3.5.30", "", False),       # unknown: not safe
    ("3.5.32", "3.6.0", "3.5.0", True),
    ("3.5.32", "3.6.0", "3.6.0", False),
])
def test_rollback_allowed(previous, target, cluster_version, allowed):
    assert u.rollback_allowed(previous, target, cluster_version) is allowed


# --------------------------------------------------------------------------
# wait_for_member against a real etcdctl 3.5.30 capture, on a fake clock
# --------------------------------------------------------------------------

STATUS_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "etcd_status"


class FakeEtcdctl(Etcdctl):
    """ctl(endpoints, *args) -> (rc, stdout, stderr) from the 3.5.30 healthy capture.

    The first ``leaderless_polls`` multi-endpoint `endpoint status` calls answer as a member
    without a leader does: no "leader" field (omitempty) and "etcdserver: no leader".
    """

    def __init__(self, leaderless_polls: int = 0) -> None:
        super().__init__(run=None)
        self.doc = json.loads((STATUS_FIXTURES / "3.5.30" / "healthy.json").read_text())
        self.leaderless_polls = leaderless_polls
        self.polls = 0
        self.calls: list = []

    def __call__(self, endpoints, *args):
        endpoints = list(endpoints)
        self.calls.append((endpoints, args))
        command = [a for a in args if not a.startswith("-") and a != "json"]
        rec = next(r for r in self.doc["commands"]
                   if r["command"] == command and r["endpoints"] == endpoints
                   and "--hex" not in r["argv"] and "--cluster" not in r["argv"])
        out = rec["stdout"]
        if command == ["endpoint", "status"] and len(endpoints) > 1:
            self.polls += 1
            if self.polls <= self.leaderless_polls:
                entries = json.loads(out)
                for entry in entries:
                    del entry["Status"]["leader"]
                    entry["Status"]["errors"] = ["etcdserver: no leader"]
                out = json.dumps(entries)
        return rec["rc"], out, rec["stderr"]


class FakeClock:
    """clock() and sleep(): time passes only when slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


ENDPOINTS = ["https://127.0.0.1:23791", "https://127.0.0.1:23792", "https://127.0.0.1:23793"]


M2_APPLIED = 17  # m2's raftAppliedIndex in its own `endpoint status` capture


def _wait(ctl: FakeEtcdctl, clock: FakeClock, applied_before: int = M2_APPLIED, version: str = "3.5.30",
          timeout: float = 10.0) -> dict:
    return u.wait_for_member(ctl, ENDPOINTS, "m2", applied_before, version, timeout,
                             clock=clock, sleep=clock.sleep, interval=0.5)


def test_wait_for_a_member_done_at_once():
    ctl, clock = FakeEtcdctl(), FakeClock()
    result = _wait(ctl, clock)
    assert result["done"] is True and result["failed"] == []
    assert result["seconds"] == 0 and result["longest_leaderless_seconds"] == 0 and clock.slept == []
    assert result["status"]["leader"]["name"] == "m3"
    assert {m["name"] for m in result["status"]["members"]} == {"m1", "m2", "m3"}
    assert ctl.calls[0] == (ENDPOINTS, ("endpoint", "status", "-w", "json"))


def test_wait_measures_the_leaderless_stretch_on_the_fake_clock():
    ctl, clock = FakeEtcdctl(leaderless_polls=4), FakeClock()
    result = _wait(ctl, clock)
    # polls at 0, 0.5, 1.0 and 1.5 see no leader; the one at 2.0 sees m3 lead and m2 done
    assert result["done"] is True and result["failed"] == []
    assert result["longest_leaderless_seconds"] == 2.0 and result["seconds"] == 2.0
    assert clock.slept == [0.5] * 4 and ctl.polls == 5
    # while no leader is known, no full status is read
    assert sum(1 for _, args in ctl.calls if args[:2] == ("member", "list")) == 1


@pytest.mark.parametrize("applied_before, version, failed", [
    (M2_APPLIED, "3.6.0", ["m2 reports version 3.5.30, not 3.6.0"]),
    (25, "3.5.30", ["m2 has applied index 17, behind the 25 the leader had applied before it restarted"]),
])
def test_wait_gives_up_after_the_timeout_and_names_the_check(applied_before, version, failed):
    ctl, clock = FakeEtcdctl(), FakeClock()
    result = _wait(ctl, clock, applied_before=applied_before, version=version, timeout=2.0)
    assert result["done"] is False and result["failed"] == failed
    assert result["seconds"] == 2.0 and clock.now == 2.0
    assert result["longest_leaderless_seconds"] == 0


def test_wait_gives_up_on_a_cluster_that_never_finds_a_leader():
    ctl, clock = FakeEtcdctl(leaderless_polls=1000), FakeClock()
    result = _wait(ctl, clock, timeout=2.0)
    assert result["done"] is False
    assert result["failed"] == ["no member knows a leader (no write can commit)"]
    assert result["longest_leaderless_seconds"] == 2.0 and result["status"] == {}
