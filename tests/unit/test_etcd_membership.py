"""Membership rules: who joins as a learner, what a joiner starts with, which removals keep quorum."""
from __future__ import annotations

import pytest

from conftest import load_plugin

mb = load_plugin("module_utils/etcd_membership.py")


def inv(n: int, initialized: bool = True) -> dict:
    return {"host": "h%d" % n, "name": "m%d" % n, "address": "10.0.0.%d" % n, "initialized": initialized}


def row(n: int, learner: bool = False, healthy: bool = True, started: bool = True) -> dict:
    return {"name": "m%d" % n if started else "", "id_hex": "%x" % (0xa0 + n), "peer_urls": ["https://10.0.0.%d:2380" % n],
            "is_learner": learner, "healthy": healthy and started}


def status(*rows: dict) -> dict:
    return {"members": list(rows)}


THREE = status(row(1), row(2), row(3))


def test_without_a_running_cluster_nobody_joins():
    assert mb.joiners({}, [inv(1, False), inv(2, False)]) == [] and mb.membership_problems(None, [inv(1)]) == []


def test_a_new_host_joins_and_a_started_learner_is_promoted():
    members = [inv(1), inv(2), inv(3), inv(4, False), inv(5)]
    cluster = status(row(1), row(2), row(3), row(5, learner=True))
    assert [mb.join_state(cluster, m) for m in members] == ["", "", "", "join", "promote"]
    assert mb.joiners(cluster, members) == ["h4", "h5"]
    # Added as a learner by a run that stopped before starting it: that run's work goes on.
    assert mb.join_state(status(row(1), row(4, learner=True, started=False)), inv(4, False)) == "join"


def test_a_bootstrap_under_way_is_not_a_join():
    cluster = status(row(1), row(2, started=False), row(3, started=False))
    assert [mb.join_state(cluster, inv(n, n == 1)) for n in (1, 2, 3)] == ["", "", ""]


def test_a_host_with_foreign_data_or_a_member_without_its_data_is_refused():
    problems = mb.membership_problems(THREE, [inv(1), inv(2), inv(3, False), inv(4)])
    assert len(problems) == 2
    assert "h3 (member m3) is a voting member of the cluster but holds no data" in problems[0]
    assert "etcd_member_remove=m3" in problems[0]
    assert "h4 is not a member of the running cluster but already holds etcd data" in problems[1]


def test_a_member_missing_from_the_inventory_is_refused_unless_being_removed():
    problems = mb.membership_problems(THREE, [inv(1), inv(2)])
    assert problems == [p for p in problems if "member m3 (peer https://10.0.0.3:2380) is in the cluster but no host" in p]
    assert len(problems) == 1 and "etcd_member_remove=m3" in problems[0]
    assert mb.membership_problems(THREE, [inv(1), inv(2), inv(4, False)], remove=["m3"]) == []
    half = status(row(1), row(2), row(3), row(9, learner=True, started=False))
    assert "added but never started (id a9" in mb.membership_problems(half, [inv(1), inv(2), inv(3)])[0]


def test_a_join_is_refused_when_the_database_is_near_the_quota():
    big = status(dict(row(1), db_size=90 << 20), row(2), row(3))
    refused = mb.membership_problems(big, [inv(1), inv(2), inv(3), inv(4, False)], quota_bytes=100 << 20)
    assert len(refused) == 1 and "90 MiB, 90% of the 100 MiB quota" in refused[0]
    assert mb.membership_problems(big, [inv(1), inv(2), inv(3)], quota_bytes=100 << 20) == []  # nobody joins
    assert mb.membership_problems(big, [inv(1), inv(2), inv(3), inv(4, False)], quota_bytes=1 << 30) == []


def test_an_inventory_of_another_cluster_is_refused():
    assert any("not the cluster's" in p for p in mb.membership_problems(THREE, [inv(7, False), inv(8, False)]))


def test_a_joiner_starts_with_the_whole_membership_itself_included():
    cluster = status(row(1), row(2), row(4, learner=True, started=False))
    assert mb.join_cluster(cluster, "m4", "https://10.0.0.4:2380") == (
        "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380,m4=https://10.0.0.4:2380")
    with pytest.raises(ValueError, match="not in the member list yet"):
        mb.join_cluster(THREE, "m4", "https://10.0.0.4:2380")
    with pytest.raises(ValueError, match="a9 .* was added but never started: remove it"):
        mb.join_cluster(status(row(1), row(9, learner=True, started=False), row(4, learner=True, started=False)),
                        "m4", "https://10.0.0.4:2380")


def test_removal_keeps_a_healthy_majority_of_what_is_left():
    assert mb.removal_problems(THREE, "m3") == []
    one_down = status(row(1), row(2, healthy=False), row(3))
    assert mb.removal_problems(one_down, "m2") == []  # the unhealthy one may go
    refused = mb.removal_problems(one_down, "m3")
    assert refused and "2 voting member(s) of which 1 healthy, short of the 2" in refused[0] and "m2" in refused[0]
    assert mb.removal_problems(status(row(1), row(2, learner=True, healthy=False)), "m2") == []  # a learner never counts
    assert "only voting member" in mb.removal_problems(status(row(1)), "m1")[0]
    assert "m7 is not a member" in mb.removal_problems(THREE, "m7")[0]
    assert mb.removal_problems(THREE, "a3") == []  # by hex id too


def test_several_removals_are_checked_in_order_and_a_host_still_in_the_inventory_is_refused():
    five = status(*(row(n) for n in range(1, 6)))
    assert mb.removal_plan_problems(five, ["m4", "m5"], [inv(1), inv(2), inv(3)]) == []
    down = status(row(1), row(2), row(3, healthy=False), row(4), row(5))
    assert "short of the 2" in " ".join(mb.removal_plan_problems(down, ["m4", "m5", "m1"], [inv(2), inv(3)]))
    assert "inventory host h5" in mb.removal_plan_problems(five, ["m5"], [inv(1), inv(5)])[0]
    assert "name the members to remove" in mb.removal_plan_problems(five, [], [])[0]


def test_bootstrap_settings_are_read_from_the_config_file():
    text = "data-dir: /var/lib/etcd\ninitial-cluster: m1=https://a:2380,m2=https://b:2380\ninitial-cluster-state: existing\n" \
           "initial-cluster-token: lab\n"
    assert mb.bootstrap_settings(text) == {"initial_cluster": "m1=https://a:2380,m2=https://b:2380",
                                           "initial_cluster_state": "existing"}
    assert mb.bootstrap_settings("") == {}


def test_peer_urls_follow_the_initial_cluster_rules():
    assert mb.peer_url({"address": "10.0.0.1"}) == "https://10.0.0.1:2380"
    assert mb.peer_url({"address": "fd00::1"}, 2390) == "https://[fd00::1]:2390"
    assert mb.peer_url({"address": "x", "peer_url": "https://relay:1"}) == "https://relay:1"
