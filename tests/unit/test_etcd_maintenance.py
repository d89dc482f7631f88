"""Defragmentation and NOSPACE recovery rules: who, in which order, and what stops a run."""
from __future__ import annotations

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_maintenance as m

MIB = 2**20


def member(name, leader=False, size=300, in_use=100, healthy=True, learner=False):
    return {"name": name, "id_hex": "id-" + name, "endpoint": "https://%s:2379" % name, "is_leader": leader,
            "is_learner": learner, "healthy": healthy, "db_size": size * MIB, "db_size_in_use": in_use * MIB}


def status(*members, problems=(), alarms=()):
    return {"members": list(members), "problems": list(problems), "alarms": list(alarms)}


def test_followers_first_by_name_then_the_leader():
    plan = m.defrag_plan(status(member("c", leader=True), member("b"), member("a")), "defrag", 100 * MIB)
    assert [r["name"] for r in plan["order"]] == ["a", "b", "c"] and plan["order"][-1]["is_leader"]
    assert plan["problems"] == [] and plan["skipped"] == []


def test_members_with_little_free_space_are_left_alone_and_say_why():
    plan = m.defrag_plan(status(member("a", size=150), member("b", leader=True)), "defrag", 100 * MIB)
    assert [r["name"] for r in plan["order"]] == ["b"]
    assert plan["skipped"][0]["name"] == "a" and "50.0 MiB free, under" in plan["skipped"][0]["why"]
    lines = m.plan_lines(plan, "defrag")
    assert lines[0].startswith("defragment 1: b (leader: leadership moves away first)")
    assert lines[1].startswith("leave a: 50.0 MiB free")


def test_nospace_defragments_every_member_and_refuses_while_a_learner_is_there():
    plan = m.defrag_plan(status(member("a", size=10, in_use=10), member("b", leader=True)), "nospace", 100 * MIB)
    assert [r["name"] for r in plan["order"]] == ["a", "b"] and plan["problems"] == []
    assert "compact to revision 42" in m.plan_lines(plan, "nospace", 42)[0]
    with_learner = m.defrag_plan(status(member("a"), member("b", leader=True), member("l", learner=True)), "nospace", 0)
    assert with_learner["problems"][0].startswith("learner l cannot be defragmented here")


def test_a_defrag_lists_a_learner_as_left_alone():
    plan = m.defrag_plan(status(member("a"), member("b", leader=True), member("l", learner=True)), "defrag", 100 * MIB)
    assert [r["name"] for r in plan["order"]] == ["a", "b"] and plan["problems"] == []
    assert [(r["name"], r["why"]) for r in plan["skipped"]] == [("l", "a learner: not defragmented here (promote it first)")]


def test_member_names_given_as_one_comma_separated_string():
    plan = m.defrag_plan(status(member("ab"), member("b", leader=True), member("c")), "defrag", 100 * MIB, "ab, c")
    assert [r["name"] for r in plan["order"]] == ["ab", "c"] and plan["problems"] == []
    assert m.defrag_plan(status(member("ab")), "defrag", 100 * MIB, "a")["problems"][0].startswith(
        "etcd_maintenance_members names a, not")


def test_unknown_member_names_and_modes_are_refused():
    plan = m.defrag_plan(status(member("a"), member("b")), "defrag", 0, ["a", "zz"])
    assert plan["problems"] == ["etcd_maintenance_members names zz, not a voting member of this cluster (a, b): "
                                "use names from playbooks/status.yml"]
    assert [r["name"] for r in plan["order"]] == ["a"]
    assert "use defrag or nospace" in m.defrag_plan(status(member("a")), "shrink", 0)["problems"][0]
    assert "leave etcd_maintenance_members empty" in m.defrag_plan(status(member("a")), "nospace", 0, ["a"])["problems"][0]


def test_a_nospace_alarm_blocks_a_defrag_but_not_a_recovery():
    s = status(member("a"), problems=["alarm NOSPACE raised by member a"],
               alarms=[{"alarm": "NOSPACE", "member": "a", "member_id_hex": "1"}])
    assert m.blockers(s, "defrag") == ["alarm NOSPACE raised by member a"]
    assert m.blockers(s, "nospace") == []
    down = status(member("a"), problems=["member b unreachable: refused", "alarm NOSPACE raised by member a"])
    assert m.blockers(down, "nospace") == ["member b unreachable: refused"]
    assert m.blockers({}, "defrag") == ["no member answered"]


def test_corruption_is_never_disarmed_here():
    s = status(alarms=[{"alarm": "NOSPACE", "member": "a"}, {"alarm": "CORRUPT", "member": "b"}])
    assert m.other_alarms(s) == ["CORRUPT on b"]


def test_leadership_goes_to_a_healthy_member_already_done():
    s = status(member("a", leader=True), member("b"), member("c"), member("d", healthy=False))
    assert m.heir(s, "a", done=["c"]) == "id-c"
    assert m.heir(s, "a") == "id-b"
    assert m.heir(status(member("a", leader=True)), "a") == ""


def test_the_report_shows_before_after_and_time():
    lines = m.report_lines([{"name": "a", "before": 300 * MIB, "after": 100 * MIB, "seconds": 1.25}])
    assert lines[1].split() == ["a", "300.0", "MiB", "100.0", "MiB", "1.2"]


def test_a_cluster_without_quorum_margin_needs_the_downtime_accepted():
    two = dict(status(member("a", leader=True), member("b")), voting_members=2, quorum=2)
    assert "2 voting member(s) have no quorum margin" in m.defrag_plan(two, "defrag", 0)["problems"][0]
    assert m.defrag_plan(two, "defrag", 0, allow_downtime=True)["problems"] == []
    three = dict(status(member("a", leader=True), member("b"), member("c")), voting_members=3, quorum=2)
    assert m.defrag_plan(three, "defrag", 0)["problems"] == []


def test_finished_compactions_are_read_from_a_members_metrics():
    text = ("# TYPE etcd_debugging_mvcc_db_compaction_total_duration_milliseconds histogram\n"
            'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_bucket{le="1"} 0\n'
            "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_sum 12\n"
            "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count 3\n")
    assert m.compactions_done(text) == 3
    assert m.compactions_done("etcd_server_has_leader 1\n") == -1 and m.compactions_done("") == -1
