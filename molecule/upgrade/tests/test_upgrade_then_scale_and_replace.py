"""Scaling 3 -> 5 -> 3 from the inventory and replacing a member, on this scenario's cluster, last
(pytest runs this file after the CA rotation's): 3.5.30, authentication on, the aetcd writer
running through each change. The spare hosts u4 and u5 join as learners, catch up and are promoted.

In file order: site.yml with u4 and u5 in the inventory adds them one at a time (certificates,
backups and node metrics follow them) with no failed write, and a re-run changes nothing;
removing them while still in the inventory is refused; removing them (out of the inventory, in
etcd_retired) takes the cluster back to three, their etcd stopped and data moved aside; removing
a member while another is down is refused and nothing changes; a replacement of an unknown member
or of one still in the inventory is refused and nothing changes; replacing u3 by u4 under load.
"""
from __future__ import annotations

import re
import subprocess

from conftest import MEMBERS, SPARES, under_load

from harness import etcdctl_json, run_site, snapshot, ssh
from test_upgrade_then_rotate_certs import flat, writer_in

# The maintenance tests left a 24 MiB quota: a joiner receives the leader's database file whole,
# so the first test here gives the cluster its default quota back.
CLUSTER = ["-e", "etcd_version=3.5.30", "-e", "etcd_rbac_enabled=true"]
THREE = {"u1": {}, "u2": {}, "u3": {}}
FIVE = dict(THREE, u4={}, u5={})
PREFIX = "/writer/scale/"


def site(tmp_path, hosts, *extra: str, playbook: str = "site", retired=()) -> subprocess.CompletedProcess:
    return run_site(tmp_path, hosts, *CLUSTER, *extra, playbook=playbook,
                    groups={"etcd_retired": list(retired)} if retired else None)


def members() -> dict:
    """name -> is_learner, as the cluster lists them."""
    listed = etcdctl_json("u1", "member list")["members"]
    return {m.get("name", ""): bool(m.get("isLearner", False)) for m in listed}


def on(host: str, command: str) -> str:
    return ssh(SPARES.get(host, MEMBERS.get(host, host)), command, check=False).stdout.strip()


def unchanged(result: subprocess.CompletedProcess) -> bool:
    return not re.search(r"changed=[1-9]", result.stdout)


def test_a_join_near_the_quota_is_refused_and_nothing_changes(tmp_path):
    before = snapshot()
    small = ["-e", "etcd_quota_backend_bytes=%d" % (1 << 20)]  # every database is above 80% of 1 MiB
    refused = run_site(tmp_path, FIVE, "-e", "etcd_version=3.5.30", "-e", "etcd_rbac_enabled=true", *small)
    out = flat(refused)
    assert refused.returncode != 0 and "a new member receives it whole and would raise NOSPACE" in out, out[-3000:]
    assert unchanged(refused) and snapshot() == before and len(members()) == 3
    roomy = site(tmp_path / "roomy", THREE)  # the default quota: one rolling restart
    assert roomy.returncode == 0, flat(roomy)[-3000:]


def test_scaling_to_five_adds_learners_one_at_a_time_and_a_rerun_changes_nothing(tmp_path):
    scaled = under_load(writer_in(tmp_path / "writer", PREFIX), lambda: site(tmp_path / "five", FIVE), no_failed_attempt=True)
    out = flat(scaled)
    assert members() == {name: False for name in FIVE}, members()
    assert out.index("stays as it is): u4") < out.index("in sync with the leader: u4") < out.index("stays as it is): u5"), out[-3000:]
    for spare in SPARES:
        # What site.yml gives any member: its certificates, its backup timer, node metrics; and the
        # settings it joined with (state existing), kept as they are from now on.
        assert on(spare, "sudo openssl verify -CAfile /etc/etcd/pki/ca.crt /etc/etcd/pki/server.crt").endswith(": OK")
        assert on(spare, "systemctl is-active etcd etcd-backup.timer prometheus-node-exporter").split() == ["active"] * 3
        assert "initial-cluster-state: existing" in on(spare, "sudo cat /etc/etcd/etcd.conf.yml")
    again = site(tmp_path / "again", FIVE)
    assert again.returncode == 0 and unchanged(again), flat(again)[-3000:]


def test_removing_members_still_in_the_inventory_is_refused_and_nothing_changes(tmp_path):
    before = snapshot()
    refused = site(tmp_path, FIVE, "-e", "etcd_member_remove=u5,u4", playbook="remove_member")
    out = flat(refused)
    assert refused.returncode != 0 and "u5 is the member of inventory host u5: take the host out" in out, out[-3000:]
    assert unchanged(refused) and snapshot() == before and len(members()) == 5


def test_scaling_back_to_three_removes_one_at_a_time_and_retires_the_hosts(tmp_path):
    under_load(writer_in(tmp_path / "writer", PREFIX),
               lambda: site(tmp_path / "three", THREE, "-e", "etcd_member_remove=u5,u4", playbook="remove_member",
                            retired=SPARES),
               no_failed_attempt=False)
    assert members() == {name: False for name in THREE}, members()
    for spare in SPARES:
        assert on(spare, "systemctl is-active etcd; systemctl is-enabled etcd").split() == ["inactive", "disabled"]
        assert re.fullmatch(r"member\.removed-\d{8}T\d{6}Z", on(spare, "sudo ls /var/lib/etcd")), spare
    again = site(tmp_path / "again", THREE)
    assert again.returncode == 0 and unchanged(again), flat(again)[-3000:]


def test_removing_a_member_while_another_is_down_is_refused_and_nothing_changes(tmp_path):
    ssh("u2", "sudo systemctl stop etcd")
    try:
        before = snapshot()
        refused = site(tmp_path, {"u1": {}, "u2": {}}, "-e", "etcd_member_remove=u3", playbook="remove_member",
                       retired=["u3"])
        out = flat(refused)
        assert refused.returncode != 0 and "short of the 2 a quorum needs (unhealthy: u2)" in out, out[-3000:]
        assert unchanged(refused) and snapshot() == before and on("u3", "systemctl is-active etcd") == "active"
    finally:
        ssh("u2", "sudo systemctl start etcd")
    assert members() == {name: False for name in THREE}


def test_a_replacement_of_an_unknown_member_or_one_still_in_the_inventory_is_refused(tmp_path):
    before, spare_before = snapshot(), on("u4", "systemctl is-active etcd; sudo ls /var/lib/etcd")
    for hosts, name, refusal in (({"u1": {}, "u2": {}, "u3": {}, "u4": {}}, "u3", "u3 is the member of inventory host u3"),
                                 ({"u1": {}, "u2": {}, "u4": {}}, "u9", "u9 is not a member of this cluster")):
        refused = site(tmp_path / name, hosts, "-e", "etcd_member_replace=%s" % name, playbook="replace_member")
        out = flat(refused)
        assert refused.returncode != 0 and "Refused, nothing changed" in out and refusal in out, out[-3000:]
        assert unchanged(refused)
    assert snapshot() == before and len(members()) == 3
    assert on("u4", "systemctl is-active etcd; sudo ls /var/lib/etcd") == spare_before  # the new host untouched


def test_a_member_is_replaced_under_load_new_one_first_then_the_old_one_removed(tmp_path):
    new = {"u1": {}, "u2": {}, "u4": {}}
    replaced = under_load(writer_in(tmp_path / "writer", PREFIX),
                          lambda: site(tmp_path / "replace", new, "-e", "etcd_member_replace=u3", playbook="replace_member",
                                       retired=["u3"]),
                          no_failed_attempt=False)
    out = flat(replaced)
    # u3 was healthy: the cluster never had fewer voting members than three.
    assert out.index("in sync with the leader: u4") < out.index("Remove from the cluster: u3"), out[-3000:]
    assert members() == {name: False for name in new}, members()
    assert on("u3", "systemctl is-active etcd") == "inactive"
    assert re.fullmatch(r"member\.removed-\d{8}T\d{6}Z", on("u3", "sudo ls /var/lib/etcd"))
    assert "initial-cluster-state: existing" in on("u4", "sudo cat /etc/etcd/etcd.conf.yml")
