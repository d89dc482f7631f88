"""Preflight refusals: each names the problem and the fix."""
from __future__ import annotations

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_inventory import (directory_problems, health_problems, port_problems,
                                                                          preflight_report)
from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_inventory as inventory
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_plan import rolling_order


def member(name, address, **extra):
    base = {"name": name, "address": address, "version": "3.5.30", "arch": "x86_64",
            "installed_version": "", "initialized": False}
    base.update(extra)
    return base


THREE = [member("a", "10.0.0.1"), member("b", "10.0.0.2"), member("c", "10.0.0.3")]


def test_good_inventory_passes():
    assert preflight_report(THREE) == {"problems": [], "warnings": []}


def test_even_count_refused_unless_allowed():
    two = THREE[:2]
    problems = preflight_report(two)["problems"]
    assert len(problems) == 1 and "even" in problems[0] and "etcd_allow_even_members" in problems[0]
    report = preflight_report(two, allow_even=True)
    assert report["problems"] == [] and "even" in report["warnings"][0]


def test_single_member_warns():
    report = preflight_report(THREE[:1])
    assert report["problems"] == [] and "no fault tolerance" in report["warnings"][0]


def test_duplicates_refused():
    dup_name = [member("a", "10.0.0.1"), member("a", "10.0.0.2"), member("c", "10.0.0.3")]
    assert "etcd_member_name" in preflight_report(dup_name)["problems"][0]
    dup_addr = [member("a", "10.0.0.1"), member("b", "10.0.0.1"), member("c", "10.0.0.3")]
    problem = preflight_report(dup_addr)["problems"][0]
    assert "10.0.0.1" in problem and "a, b" in problem and "etcd_address" in problem


def test_unknown_version_and_arch_refused():
    bad = [member("a", "10.0.0.1", version="3.9.9", arch="sparc64"),
           member("b", "10.0.0.2", version="3.9.9"), member("c", "10.0.0.3", version="3.9.9")]
    problems = preflight_report(bad)["problems"]
    assert any("3.9.9" in p and "etcd_version" in p for p in problems)
    assert any("sparc64" in p and "etcd_arch" in p for p in problems)


def test_mixed_versions_and_running_version_change_refused():
    mixed = [member("a", "10.0.0.1"), member("b", "10.0.0.2", version="3.5.16"), member("c", "10.0.0.3")]
    assert any("different etcd versions" in p for p in preflight_report(mixed)["problems"])
    running = [member(n, a, installed_version="3.5.16", initialized=True)
               for n, a in (("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3"))]
    problems = preflight_report(running)["problems"]
    assert len(problems) == 3 and all("upgrade" in p for p in problems)


def test_new_hosts_beside_a_stopped_cluster_are_refused_but_join_a_running_one():
    partial = [member("a", "10.0.0.1", initialized=True), member("b", "10.0.0.2", initialized=True),
               member("c", "10.0.0.3")]
    problems = preflight_report(partial)["problems"]
    assert len(problems) == 1 and "no member runs: new hosts join a running cluster only" in problems[0]
    partial[0]["service_active"] = True  # etcd_membership decides who joins
    assert preflight_report(partial)["problems"] == []


def test_empty_group_refused():
    assert "no hosts" in preflight_report([])["problems"][0]


def test_rolling_order_puts_leader_last():
    names = {"h1": "a", "h2": "b", "h3": "c"}
    status = {"leader": {"name": "a"}}
    assert rolling_order(["h1", "h2", "h3"], names, status) == ["h2", "h3", "h1"]
    assert rolling_order(["h2", "h3"], names, status) == ["h2", "h3"]
    assert rolling_order(["h1"], names, {"leader": None}) == ["h1"]


def vol(role, device, action, reason="why"):
    return {"role": role, "device": device, "mount": "/var/lib/etcd", "action": action, "reason": reason}


def test_volume_refusals_are_reported_per_host():
    members = [member("a", "10.0.0.1", volumes=[vol("data", "/dev/sdb", "refuse", "/dev/sdb holds data")]),
               member("b", "10.0.0.2", volumes=[vol("data", "/dev/sdb", "format")]),
               member("c", "10.0.0.3", volumes=[vol("data", "/dev/sdb", "mount")])]
    report = preflight_report(members)
    assert report["problems"] == ["host 'a': /dev/sdb holds data"]
    assert report["warnings"] == []


def test_same_device_for_data_and_wal_is_refused():
    members = [member(n, a, volumes=[vol("data", "/dev/sdb", "format"), vol("wal", "/dev/sdb", "format")])
               for n, a in (("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3"))]
    assert all("same device" in p for p in preflight_report(members)["problems"])


def test_new_wal_volume_on_a_running_member_is_refused():
    members = [member(n, a, initialized=True, volumes=[vol("data", "/dev/sdb", "mount"),
                                                       vol("wal", "/dev/sdc", "format")])
               for n, a in (("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3"))]
    assert all("replace the member" in p for p in preflight_report(members)["problems"])


def test_no_data_volume_warns():
    members = [member(n, a, volumes=[]) for n, a in (("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3"))]
    report = preflight_report(members)
    assert report["problems"] == [] and len(report["warnings"]) == 3
    assert "etcd_data_device" in report["warnings"][0]


def zoned(*zones):
    return [member(n, "10.0.0.%d" % i, zone=z) for i, (n, z) in enumerate(zip("abcde", zones), 1)]


def test_zone_spread():
    assert preflight_report(zoned("az1", "az2", "az3")) == {"problems": [], "warnings": []}
    two_zones = preflight_report(zoned("az1", "az1", "az2"))
    assert len(two_zones["problems"]) == 1 and "zone az1 holds 2 of 3 members" in two_zones["problems"][0]
    five = preflight_report(zoned("az1", "az1", "az2", "az2", "az3"))
    assert five["problems"] == [] and len(five["warnings"]) == 2
    partly = preflight_report(zoned("az1", "", "az2"))
    assert "set it on every member" in partly["problems"][0]


def test_clock_ports_and_space_gates():
    base = dict(clock_synchronized="yes", listening_ports=[22], free_bytes=50 * 1024**3, service_active=False)
    good = [member(n, a, **base) for n, a in (("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3"))]
    assert preflight_report(good, quota_bytes=2 * 1024**3)["problems"] == []
    bad = [member("a", "10.0.0.1", **dict(base, clock_synchronized="no")),
           member("b", "10.0.0.2", **dict(base, listening_ports=[22, 2379])),
           member("c", "10.0.0.3", **dict(base, free_bytes=1024**3))]
    problems = preflight_report(bad, quota_bytes=2 * 1024**3)["problems"]
    assert any("host 'a': clock synchronisation is off" in p for p in problems)
    assert any("host 'b': port(s) 2379 already in use" in p for p in problems)
    assert any("host 'c': 1.0 GiB free" in p and "etcd_quota_backend_bytes" in p for p in problems)
    assert preflight_report(bad[:1] + good[1:], quota_bytes=2 * 1024**3, require_clock_sync=False)["problems"] == []
    # A running etcd owns its ports; that is not a conflict.
    running = [member("a", "10.0.0.1", **dict(base, listening_ports=[2379, 2380], service_active=True))] + good[1:]
    assert preflight_report(running)["problems"] == []


def test_each_port_variable_needs_a_port_of_its_own():
    assert port_problems({"etcd_client_port": 2379, "etcd_peer_port": 2380, "etcd_metrics_port": 2381}) == []
    problems = port_problems({"etcd_client_port": 2379, "etcd_peer_port": "2379", "etcd_metrics_port": 0,
                              "etcd_node_exporter_port": "http"})
    assert problems[0].startswith("etcd_peer_port (2379) is also etcd_client_port")
    assert problems[1] == "etcd_metrics_port (0) is not a TCP port: use 1-65535"
    assert problems[2].startswith("etcd_node_exporter_port ('http') is not a TCP port number")


def test_member_names_that_would_break_initial_cluster_are_refused():
    members = [{"name": "m1", "address": "10.0.0.1", "host": "a"}, {"name": "m2", "address": "10.0.0.2", "host": "b"},
               {"name": "m3,m4=https://10.9.9.9:2380", "address": "10.0.0.3", "host": "c"}]
    problems = preflight_report(members)["problems"]
    assert any(p.startswith("host 'c': member name 'm3,m4=https://10.9.9.9:2380' cannot go into initial-cluster")
               for p in problems), problems
    members[2]["name"] = "etcd-3.dc1_a"
    assert not [p for p in preflight_report(members)["problems"] if "cannot go into" in p]


# What preflight passes (etcd_bin_dir is a shared folder by design: it only gets links).
DEFAULT_DIRS = {"etcd_data_dir": "/var/lib/etcd", "etcd_wal_dir": "", "etcd_config_dir": "/etc/etcd",
                "etcd_pki_dir": "/etc/etcd/pki", "etcd_install_dir": "/opt/etcd"}


def test_the_default_folders_pass():
    assert directory_problems(DEFAULT_DIRS) == []
    assert directory_problems(dict(DEFAULT_DIRS, etcd_wal_dir="/var/lib/etcd-wal")) == []


@pytest.mark.parametrize("change, words", [
    ({"etcd_data_dir": "var/lib/etcd"}, "etcd_data_dir ('var/lib/etcd') is not an absolute path"),
    ({"etcd_data_dir": "/var/lib/"}, "etcd_data_dir is /var/lib, a system folder"),
    ({"etcd_config_dir": "/etc"}, "etcd_config_dir is /etc, a system folder"),
    ({"etcd_pki_dir": "/var/lib/etcd/pki"}, "etcd_data_dir (/var/lib/etcd) and etcd_pki_dir (/var/lib/etcd/pki) overlap"),
    ({"etcd_wal_dir": "/var/lib/etcd/wal"}, "etcd_data_dir (/var/lib/etcd) and etcd_wal_dir (/var/lib/etcd/wal) overlap"),
    ({"etcd_install_dir": "/var/lib"}, "etcd_install_dir is /var/lib, a system folder"),
])
def test_folders_that_would_take_over_or_nest_are_refused(change, words):
    problems = directory_problems(dict(DEFAULT_DIRS, **change))
    assert any(p.startswith(words) for p in problems), problems


def test_data_and_wal_on_one_device_through_two_links_are_refused():
    volumes = [{"role": "data", "device": "/dev/disk/by-id/nvme-a", "resolved": "/dev/nvme0n1", "action": "format"},
               {"role": "wal", "device": "/dev/nvme0n1", "resolved": "/dev/nvme0n1", "action": "format"}]
    members = [{"name": "m%d" % i, "address": "10.0.0.%d" % i, "volumes": volumes if i == 1 else []}
               for i in (1, 2, 3)]
    problems = preflight_report(members)["problems"]
    assert any("names the same device for data and WAL (/dev/disk/by-id/nvme-a and /dev/nvme0n1" in p
               for p in problems), problems


def test_an_address_the_host_does_not_have_is_refused_and_a_name_is_left_to_dns():
    members = [{"name": "m%d" % i, "host": "h%d" % i, "address": "10.0.0.%d" % i,
                "host_addresses": ["10.0.0.%d" % i, "172.17.0.%d" % i]} for i in (1, 2, 3)]
    assert not [p for p in preflight_report(members)["problems"] if "not an address" in p]
    members[2]["address"] = "10.0.0.9"
    problems = preflight_report(members)["problems"]
    assert any(p.startswith("host 'h3': etcd_address 10.0.0.9 is not an address of this host (it has 10.0.0.3, "
                            "172.17.0.3)") for p in problems), problems
    members[2]["address"] = "etcd-3.example.net"
    assert not [p for p in preflight_report(members)["problems"] if "not an address" in p]


def test_a_change_to_a_cluster_with_a_member_down_is_refused_unless_that_member_is_being_repaired():
    members = [{"name": "m%d" % i, "host": "h%d" % i, "initialized": True, "service_active": i != 2} for i in (1, 2, 3)]
    problems = health_problems(members)
    assert len(problems) == 1 and problems[0].startswith("h2 (m2): etcd is not running there")
    assert '"etcd_repair_members": ["h2"]' in problems[0]
    assert health_problems(members, ["h2"]) == [] and health_problems(members, ["m2"]) == []
    fresh = [dict(m, initialized=False, service_active=False) for m in members]
    assert health_problems(fresh) == []  # a new cluster has nothing running yet


def _status(**m2):
    members = [
        {"name": "m1", "endpoint": "https://10.0.0.1:2379", "healthy": True, "is_learner": False, "errors": []},
        dict({"name": "m2", "endpoint": "https://10.0.0.2:2379", "healthy": False, "is_learner": False,
              "errors": ["etcdserver: no leader"]}, **m2),
    ]
    return {"members": members, "alarms": []}


FACTS = [{"host": "h1", "name": "m1", "service_active": True}, {"host": "h2", "name": "m2", "service_active": True}]


def test_a_running_but_unhealthy_member_is_named_with_its_error_and_the_repair_switch():
    problems = inventory.status_problems(_status(), FACTS)
    assert len(problems) == 1
    assert "member m2 (https://10.0.0.2:2379) runs but is not healthy: etcdserver: no leader" in problems[0]
    assert "on h2: journalctl -u etcd says why; systemctl restart etcd" in problems[0]
    assert inventory.status_problems(_status(), FACTS, ["h2"]) == []
    assert inventory.status_problems(_status(), FACTS, ["m2"]) == []


def test_status_leaves_stopped_members_and_learners_to_their_own_checks():
    stopped = [FACTS[0], dict(FACTS[1], service_active=False)]
    assert inventory.status_problems(_status(), stopped) == []
    assert inventory.status_problems(_status(is_learner=True), FACTS) == []
    assert inventory.status_problems({}, FACTS) == []


def test_an_alarm_is_refused_with_what_to_do():
    status = _status(healthy=True)
    status["alarms"] = [{"member_id_hex": "1a", "member": "m1", "alarm": "NOSPACE"}]
    problems = inventory.status_problems(status, FACTS)
    assert len(problems) == 1 and "NOSPACE alarm (member m1)" in problems[0] and "etcd_maintenance_mode=nospace" in problems[0]


def _running(**extra):
    """Three members that hold data and run etcd 3.5.16 while etcd_version asks for 3.5.30."""
    return [member(n, a, **dict({"installed_version": "3.5.16", "initialized": True, "service_active": True}, **extra))
            for n, a in (("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3"))]


def test_an_upgrade_may_change_the_version_of_running_members():
    changing = "provisioning never changes the version"
    assert preflight_report(_running(), upgrade=True) == {"problems": [], "warnings": []}
    problems = preflight_report(_running())["problems"]
    assert len(problems) == 3 and all(changing in p for p in problems)
    assert problems[0].startswith("host 'a' already runs etcd 3.5.16 but etcd_version is 3.5.30")


def test_an_upgrade_refuses_a_member_that_does_not_run():
    members = _running()
    members[1] = dict(members[1], service_active=False)
    problems = preflight_report(members, upgrade=True)["problems"]
    assert len(problems) == 1
    assert problems[0].startswith("host 'b' does not run etcd: an upgrade starts from a running, healthy cluster")
    assert not any("does not run etcd" in p for p in preflight_report(members)["problems"])


@pytest.mark.parametrize("state", [None, "", "false", "False", 0])
def test_an_upgrade_counts_an_unknown_or_false_service_state_as_not_running(state):
    members = _running()
    members[2] = dict(members[2], service_active=state)
    problems = preflight_report(members, upgrade=True)["problems"]
    assert [p.split(":")[0] for p in problems] == ["host 'c' does not run etcd"]
