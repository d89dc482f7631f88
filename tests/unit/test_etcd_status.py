"""Tests for plugins/module_utils/etcd_status.py, the etcd_status module and
the etcd_status_table filter.

Fixtures are real etcdctl output captured from loopback clusters (see
fixtures/etcd_status/README.md). Where a test needs a state we could not
produce for real (split leader view, 3.6 fields) it says so and derives it
from a real capture.
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import (
    FLAG_ENV,
    Etcdctl,
    EtcdStatusError,
    build_cluster_status,
    collect,
    command_error,
    id_hex,
    iter_json_docs,
    parse_endpoint_health,
    parse_endpoint_status,
    parse_member_list,
    parse_status_failures,
    probe,
)
from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_status as etcd_status_mod

FIXTURES = Path(__file__).parent / "fixtures" / "etcd_status"
VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if re.fullmatch(r"\d+\.\d+\.\d+", p.name))
ALL_FILES = sorted(FIXTURES.glob("*/*.json"))


def load(version: str, scenario: str) -> Dict[str, Any]:
    return json.loads((FIXTURES / version / f"{scenario}.json").read_text())


def _endpoints(argv: List[str]) -> List[str]:
    return next(a.split("=", 1)[1].split(",") for a in argv if a.startswith("--endpoints="))


def _command(argv: List[str]) -> List[str]:
    return [a for a in argv[1:] if not a.startswith("-") and a != "json"]


class FakeRun:
    """Stands in for AnsibleModule.run_command, answering from a capture."""

    def __init__(self, doc: Dict[str, Any]) -> None:
        self.doc = doc
        self.calls: List[Tuple[List[str], Dict[str, str]]] = []

    def __call__(self, argv, environ_update=None, **_: Any) -> Tuple[int, str, str]:
        assert isinstance(argv, list), "argv must be a list, never a shell string"
        self.calls.append((list(argv), dict(environ_update or {})))
        cmd, eps = _command(argv), _endpoints(argv)
        for rec in self.doc["commands"]:
            if "--hex" in rec["argv"] or "--cluster" in rec["argv"]:
                continue
            if rec["command"] == cmd and rec["endpoints"] == eps:
                return rec["rc"], rec["stdout"], rec["stderr"]
        raise AssertionError(f"no capture for {cmd} {eps} in {self.doc['scenario']}")

    def commands(self) -> List[Tuple[str, Tuple[str, ...]]]:
        return [(" ".join(_command(a)), tuple(_endpoints(a))) for a, _ in self.calls]


def run_collect(version: str, scenario: str) -> Tuple[Dict[str, Any], FakeRun]:
    doc = load(version, scenario)
    fake = FakeRun(doc)
    status = collect(Etcdctl(run=fake), doc["seed_endpoints"])
    data = status.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON-able
    return data, fake


def by_name(data: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {m["name"] or m["id_hex"]: m for m in data["members"]}


def _rec(doc: Dict[str, Any], cmd: str, eps: Optional[List[str]] = None,
         hexed: bool = False) -> Dict[str, Any]:
    for rec in doc["commands"]:
        if " ".join(rec["command"]) == cmd and ("--hex" in rec["argv"]) == hexed \
                and "--cluster" not in rec["argv"] and (eps is None or rec["endpoints"] == eps):
            return rec
    raise KeyError(cmd)


# --------------------------------------------------------------------------
# Parsers against every capture
# --------------------------------------------------------------------------

def test_fixtures_cover_both_versions():
    assert {"3.4.23", "3.5.1"} <= set(VERSIONS)  # 3.5.30 too when it was captured
    for version in VERSIONS:
        doc = load(version, "healthy")
        assert doc["etcdctl_version"] == version


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_capture_parses(path: Path):
    doc = json.loads(path.read_text())
    for rec in doc["commands"]:
        cmd, out, err = " ".join(rec["command"]), rec["stdout"], rec["stderr"]
        if cmd == "member list" and "-w" in rec["argv"]:
            if rec["rc"] == 0:
                ml = parse_member_list(out)
                assert ml.members and all(m.id > 0 for m in ml.members)
            else:
                with pytest.raises(EtcdStatusError):
                    parse_member_list(out)
                assert command_error(rec["rc"], out, err)
        elif cmd == "endpoint status" and "--cluster" not in rec["argv"]:
            statuses = parse_endpoint_status(out)
            failed = parse_status_failures(err)
            if rec["rc"] == 0:
                assert len(statuses) == len(rec["endpoints"]) and not failed
            else:
                # every endpoint is either parsed or explained, unless etcdctl
                # refused to start at all (client_errors: env conflict)
                assert len(statuses) + len(failed) in (0, len(rec["endpoints"]))
                assert command_error(rec["rc"], out, err)
            for st in statuses:
                assert st.member_id and st.cluster_id and st.version == doc["etcdctl_version"]
        elif cmd == "endpoint health":
            checks = parse_endpoint_health(out)
            assert len(checks) == len(rec["endpoints"]) or (rec["rc"] != 0 and not checks)
            assert all(c.health for c in checks) == (rec["rc"] == 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_member_list_ids_are_hex_like_etcdctl_prints_them(version):
    doc = load(version, "learner_unstarted")
    add = next(r for r in doc["commands"] if r["command"][:2] == ["member", "add"] and r["rc"] == 0)
    printed = re.search(r"Member\s+([0-9a-f]+) added to cluster\s+([0-9a-f]+)", add["stdout"])
    ml = parse_member_list(_rec(doc, "member list")["stdout"])
    learner = next(m for m in ml.members if m.is_learner)
    assert learner.id_hex == printed.group(1)  # what member promote/remove take
    assert id_hex(ml.cluster_id) == printed.group(2)
    assert not learner.started and learner.name == "" and learner.client_urls == []
    assert learner.peer_urls == ["https://127.0.0.1:23804"]


@pytest.mark.parametrize("version", VERSIONS)
def test_member_list_hex_flag_variant(version):
    """3.5 --hex prints hex strings, "clientURLS" and drops isLearner; 3.4 ignores --hex."""
    doc = load(version, "learner_unstarted")
    plain = parse_member_list(_rec(doc, "member list")["stdout"])
    hexed = parse_member_list(_rec(doc, "member list", hexed=True)["stdout"])
    assert sorted(m.id for m in plain.members) == sorted(m.id for m in hexed.members)
    assert plain.cluster_id == hexed.cluster_id
    for m in hexed.members:
        if m.started:
            assert m.client_urls
    if version.startswith("3.5"):
        assert not any(m.is_learner for m in hexed.members)  # lost: why we don't use --hex


def test_iter_json_docs_tolerates_noise():
    text = 'warn line {not json}\n[{"a":1}]\n{"level":"warn"}\nError: x\n{"b":[2]}'
    assert list(iter_json_docs(text)) == [[{"a": 1}], {"level": "warn"}, {"b": [2]}]
    assert list(iter_json_docs("")) == []


def test_endpoint_status_omitempty_fields():
    doc = load("3.5.1", "quorum_lost")
    st = parse_endpoint_status(_rec(doc, "endpoint status", ["https://127.0.0.1:23791"])["stdout"])[0]
    assert st.leader == 0 and not st.is_leader  # "leader" absent = no leader
    assert st.errors[0] == "etcdserver: no leader"
    assert st.errors[1] == "memberID:2052655464173783798 alarm:NOSPACE"  # trailing space gone
    healthy = load("3.5.1", "healthy")
    for rec in healthy["commands"]:
        if rec["command"] == ["endpoint", "status"] and len(rec["endpoints"]) == 1:
            st = parse_endpoint_status(rec["stdout"])[0]
            assert st.is_learner is False and st.errors == []  # both absent in JSON


def test_endpoint_status_36_fields():
    """Synthetic: a real 3.5.1 record plus the fields 3.6 adds."""
    rec = _rec(load("3.5.1", "healthy"), "endpoint status", ["https://127.0.0.1:23791"])
    doc = json.loads(rec["stdout"])
    doc[0]["Status"].update(storageVersion="3.6.0", dbSizeQuota=2147483648,
                            downgradeInfo={"targetVersion": "", "enabled": False})
    st = parse_endpoint_status(json.dumps(doc))[0]
    assert (st.storage_version, st.db_size_quota) == ("3.6.0", 2147483648)


@pytest.mark.parametrize("version", VERSIONS)
def test_unreachable_status_is_explained(version):
    doc = load(version, "member_stopped")
    rec = _rec(doc, "endpoint status", ["https://127.0.0.1:23793"])
    assert rec["rc"] == 1 and parse_endpoint_status(rec["stdout"]) == []
    err = parse_status_failures(rec["stderr"])["https://127.0.0.1:23793"]
    assert err.startswith("context deadline exceeded") and "connection refused" in err


@pytest.mark.parametrize("version", VERSIONS)
def test_client_side_errors(version):
    recs = load(version, "client_errors")["commands"]
    no_cert, bad_ca, env_conflict, env_empty = (command_error(r["rc"], r["stdout"], r["stderr"])
                                                for r in recs)
    assert all(r["rc"] == 1 for r in recs)
    assert no_cert.startswith("context deadline exceeded")
    if version.startswith("3.5"):  # 3.4.23 only says "broken pipe"/"TransientFailure"
        assert re.search(r"tls: (bad certificate|certificate required)", no_cert)
        assert "x509: certificate signed by unknown authority" in bad_ca
    # etcdctl aborts on ETCDCTL_ENDPOINTS + --endpoints, even with an empty value
    for msg in (env_conflict, env_empty):
        assert "conflicting environment variable" in msg and "ETCDCTL_ENDPOINTS" in msg


# --------------------------------------------------------------------------
# ClusterStatus from real scenarios
# --------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_healthy_cluster(version):
    data, _ = run_collect(version, "healthy")
    assert data["healthy"] and data["has_quorum"] and data["problems"] == []
    assert (data["voting_members"], data["learners"], data["quorum"], data["healthy_voters"]) \
        == (3, 0, 2, 3)
    assert len(data["leaders_seen"]) == 1 and data["leader"]["id_hex"] == data["leaders_seen"][0]
    leaders = [m for m in data["members"] if m["is_leader"]]
    assert len(leaders) == 1 and leaders[0]["name"] == data["leader"]["name"]
    assert data["leader"]["endpoint"] == leaders[0]["endpoint"]
    assert data["versions"] == [version] and data["revision"] == 6 and data["revision_spread"] == 0
    assert re.fullmatch(r"[0-9a-f]+", data["cluster_id"])
    for m in data["members"]:
        assert m["healthy"] and m["reachable"] and m["started"] and not m["is_learner"]
        assert re.fullmatch(r"[0-9a-f]+", m["id_hex"]) and m["db_size"] > 0
        assert m["endpoint"] == m["client_urls"][0] and m["errors"] == []


@pytest.mark.parametrize("version", VERSIONS)
def test_stopped_member(version):
    data, fake = run_collect(version, "member_stopped")
    assert not data["healthy"] and data["has_quorum"]
    assert (data["healthy_voters"], data["quorum"]) == (2, 2)
    m3 = by_name(data)["m3"]
    assert not m3["reachable"] and not m3["healthy"] and "connection refused" in m3["errors"][0]
    assert data["leader"] is not None and data["leader"]["name"] != "m3"
    # gRPC wording varies by release ("dialing dial tcp" vs "dialing: dial tcp")
    assert len(data["problems"]) == 1
    assert re.fullmatch(r"member m3 \(https://127\.0\.0\.1:23793\) unreachable: context deadline "
                        r"exceeded \(transport: Error while dialing:? dial tcp 127\.0\.0\.1:23793: "
                        r"connect: connection refused\)", data["problems"][0])
    # the dead member is not sent a second (health) call that would only time out
    assert ("endpoint health", ("https://127.0.0.1:23793",)) not in fake.commands()


@pytest.mark.parametrize("version", VERSIONS)
def test_learner_not_started(version):
    data, _ = run_collect(version, "learner_unstarted")
    assert (data["voting_members"], data["learners"], data["quorum"]) == (3, 1, 2)
    learner = next(m for m in data["members"] if m["is_learner"])
    assert learner["name"] == "" and not learner["started"] and not learner["healthy"]
    assert learner["endpoint"] == "" and learner["errors"] == ["added but never started"]
    assert data["healthy"]  # learners don't vote; the problem is still reported
    assert data["problems"] == [f"learner {learner['id_hex']} (peer https://127.0.0.1:23804) "
                                "was added but never started"]


@pytest.mark.parametrize("version", VERSIONS)
def test_learner_started(version):
    data, fake = run_collect(version, "learner_started")
    assert (data["voting_members"], data["learners"], data["quorum"]) == (3, 1, 2)
    m4 = by_name(data)["m4"]
    assert m4["is_learner"] and m4["started"] and m4["healthy"] and m4["reachable"]
    assert not m4["is_leader"] and m4["leader_id_hex"] == data["leader"]["id_hex"]
    assert data["healthy"] and data["problems"] == []
    # health always fails on learners ("rpc not supported for learner"), so it is skipped
    assert ("endpoint health", ("https://127.0.0.1:23794",)) not in fake.commands()


@pytest.mark.parametrize("version", VERSIONS)
def test_learner_health_refusal_is_not_a_problem(version):
    """Feed the real learner health refusal through probe() anyway."""
    doc = load(version, "learner_started")
    ml = parse_member_list(_rec(doc, "member list")["stdout"])
    probes = []
    for m in ml.members:
        p = probe(Etcdctl(run=FakeRun(doc)), m.client_urls[0])
        if m.is_learner:  # status says isLearner, so health was skipped; force it
            rec = _rec(doc, "endpoint health", m.client_urls)
            p.health = parse_endpoint_health(rec["stdout"])[0]
            assert "rpc not supported for learner" in p.health.error
        probes.append(p)
    data = build_cluster_status(ml, probes).to_dict()
    assert data["healthy"] and by_name(data)["m4"]["errors"] == []


@pytest.mark.parametrize("version", VERSIONS)
def test_promoted_learner_votes(version):
    data, _ = run_collect(version, "learner_promoted")
    assert (data["voting_members"], data["learners"], data["quorum"], data["healthy_voters"]) \
        == (4, 0, 3, 4)
    assert data["healthy"]


@pytest.mark.parametrize("version", VERSIONS)
def test_nospace_alarm(version):
    data, _ = run_collect(version, "alarm_nospace")
    # cross-check against the `alarm list -w json` captured at the same time
    listed = json.loads(_rec(load(version, "alarm_nospace"), "alarm list")["stdout"])["alarms"]
    assert [a["alarm"] for a in listed] == [1]  # 1 = NOSPACE in the AlarmType enum
    raiser = id_hex(listed[0]["memberID"])
    name = next(m["name"] for m in data["members"] if m["id_hex"] == raiser)
    assert data["alarms"] == [{"member_id_hex": raiser, "member": name, "alarm": "NOSPACE"}]
    assert not data["healthy"] and data["has_quorum"] and data["healthy_voters"] == 4
    assert data["problems"] == [f"alarm NOSPACE raised by member {name}"]
    health = _rec(load(version, "alarm_nospace"), "endpoint health", ["https://127.0.0.1:23791"])
    # 3.4.23's endpoint health does not look at alarms; 3.5 does. Status errors carry them in both.
    assert (health["rc"] == 0) == version.startswith("3.4")


@pytest.mark.parametrize("version", VERSIONS)
def test_quorum_lost(version):
    data, _ = run_collect(version, "quorum_lost")
    assert not data["healthy"] and not data["has_quorum"] and data["leader"] is None
    assert data["leaders_seen"] == [] and "no member reports a leader" in data["problems"]
    assert data["healthy_voters"] == 0
    assert any("quorum lost" in p for p in data["problems"])
    if version.startswith("3.5"):
        # 3.5 serves member list linearizably: no quorum, no list. Membership is
        # rebuilt from the seed endpoints, dead ones kept as anonymous voters.
        assert data["problems"][0] == "member list failed: context deadline exceeded"
        assert data["voting_members"] == 3
        assert [m["id_hex"] for m in data["members"]][1:] == ["", ""]
    else:
        assert data["voting_members"] == 4 and not any("member list" in p for p in data["problems"])
    m1 = next(m for m in data["members"] if m["endpoint"] == "https://127.0.0.1:23791")
    assert m1["reachable"] and not m1["healthy"] and "etcdserver: no leader" in m1["errors"]


@pytest.mark.parametrize("version", VERSIONS)
def test_split_leader_view_is_unhealthy(version):
    """Synthetic: the real healthy capture with one member claiming itself leader."""
    doc = copy.deepcopy(load(version, "healthy"))
    rec = _rec(doc, "endpoint status", ["https://127.0.0.1:23792"])
    st = json.loads(rec["stdout"])
    st[0]["Status"]["leader"] = st[0]["Status"]["header"]["member_id"]
    rec["stdout"] = json.dumps(st)
    status = collect(Etcdctl(run=FakeRun(doc)), doc["seed_endpoints"])
    data = status.to_dict()
    assert not data["healthy"] and data["leader"] is None and len(data["leaders_seen"]) == 2
    assert any(p.startswith("members disagree on the leader") for p in data["problems"])
    assert status.member("m2").is_leader


def test_endpoint_answering_as_other_member():
    """Synthetic: m3's client URL reaches m1 (e.g. a loopback advertise URL)."""
    doc = copy.deepcopy(load("3.5.1", "healthy"))
    _rec(doc, "endpoint status", ["https://127.0.0.1:23793"])["stdout"] = \
        _rec(doc, "endpoint status", ["https://127.0.0.1:23791"])["stdout"].replace(
            "https://127.0.0.1:23791", "https://127.0.0.1:23793")
    data = collect(Etcdctl(run=FakeRun(doc)), doc["seed_endpoints"]).to_dict()
    m3 = by_name(data)["m3"]
    assert not m3["reachable"] and "answered as member 1c7c7f44ec57caf6" in m3["errors"][0]
    assert not data["healthy"] and data["has_quorum"]


# --------------------------------------------------------------------------
# Etcdctl runner
# --------------------------------------------------------------------------

def test_etcdctl_argv_and_env():
    calls = []

    def run(argv, environ_update=None):
        calls.append((argv, environ_update))
        return 0, "", ""

    ctl = Etcdctl(run=run, etcdctl="/opt/etcd/etcdctl", cacert="/p/ca.crt", cert="/p/c.crt",
                  key="/p/c.key", dial_timeout="2s", command_timeout="7s")
    ctl.member_list(["https://a:2379", "https://b:2379"])
    ctl.endpoint_status("https://a:2379")
    ctl.endpoint_health("https://b:2379")
    assert calls[0] == ([
        "/opt/etcd/etcdctl", "--endpoints=https://a:2379,https://b:2379",
        "--cacert=/p/ca.crt", "--cert=/p/c.crt", "--key=/p/c.key",
        "--dial-timeout=2s", "--command-timeout=7s", "member", "list", "-w", "json",
    ], {"ETCDCTL_API": "3"})
    assert calls[1][0][1] == "--endpoints=https://a:2379"
    assert calls[1][0][-4:] == ["endpoint", "status", "-w", "json"]
    assert calls[2][0][-4:] == ["endpoint", "health", "-w", "json"]
    for argv, _ in calls:
        assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    plain = Etcdctl(run=run).argv(["http://127.0.0.1:2379"], "endpoint", "status")
    assert plain[0] == "/usr/local/bin/etcdctl"
    assert not any(a.startswith(("--cacert", "--cert", "--key")) for a in plain)
    with pytest.raises(ValueError):
        ctl.argv([], "member", "list")


def test_clashing_env():
    env = {"ETCDCTL_ENDPOINTS": "", "ETCDCTL_CACERT": "/x", "ETCDCTL_USER": "root", "PATH": "/bin"}
    assert Etcdctl.clashing_env(env) == ["ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT"]
    assert "ETCDCTL_USER" not in FLAG_ENV  # not a flag we pass: still usable for auth


def test_collect_call_sequence():
    data, fake = run_collect("3.5.1", "learner_started")
    seeds = ("https://127.0.0.1:23791", "https://127.0.0.1:23792", "https://127.0.0.1:23793")
    cmds = fake.commands()
    assert cmds[0] == ("member list", seeds)
    # then one status (+ health for voters) per member, one endpoint per call
    assert all(len(eps) == 1 for _, eps in cmds[1:])
    assert sorted(eps[0] for c, eps in cmds if c == "endpoint status") == [
        "https://127.0.0.1:2379%d" % i for i in (1, 2, 3, 4)]
    assert all(env == {"ETCDCTL_API": "3"} for _, env in fake.calls)


def test_probe_url_prefers_given_then_non_loopback():
    from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import MemberInfo, _probe_url

    m = MemberInfo(1, "m1", [], ["https://127.0.0.1:2379", "https://10.0.0.1:2379"], False)
    assert _probe_url(m, ["https://127.0.0.1:2379"]) == "https://127.0.0.1:2379"
    assert _probe_url(m, ["https://10.9.9.9:2379"]) == "https://10.0.0.1:2379"
    assert _probe_url(MemberInfo(2, "", [], [], True), []) == ""


# --------------------------------------------------------------------------
# Ansible module and filter
# --------------------------------------------------------------------------

@pytest.fixture
def tls_files(tmp_path):
    files = {}
    for name in ("cacert", "cert", "key"):
        files[name] = str(tmp_path / f"{name}.pem")
        Path(files[name]).write_text("not used by the fake runner\n")
    etcdctl = tmp_path / "etcdctl"
    etcdctl.write_text("#!/bin/sh\nexit 99\n")
    etcdctl.chmod(0o755)
    files["etcdctl"] = str(etcdctl)
    return files


def _run_module(plugin_loader, monkeypatch, capsys, doc, args):
    basic = pytest.importorskip("ansible.module_utils.basic")  # pure tests run without ansible
    from ansible.module_utils.testing import patch_module_args

    mod = plugin_loader("modules/etcd_status.py", "etcd_status_module")
    fake = FakeRun(doc)
    monkeypatch.setattr(basic.AnsibleModule, "run_command",
                        lambda self, argv, **kw: fake(argv, **kw))
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "https://elsewhere:2379")
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        mod.main()
    result = json.loads(capsys.readouterr().out)
    return exc.value.code, result, fake


@pytest.mark.parametrize("check_mode", [False, True])
def test_module_main_healthy(plugin_loader, monkeypatch, capsys, tls_files, check_mode):
    doc = load("3.5.1", "healthy")
    args = dict(endpoints=doc["seed_endpoints"], _ansible_check_mode=check_mode, **tls_files)
    rc, result, fake = _run_module(plugin_loader, monkeypatch, capsys, doc, args)
    assert rc == 0 and result["changed"] is False and "failed" not in result
    assert result["status"]["healthy"] and result["status"]["voting_members"] == 3
    argv = fake.calls[0][0]
    assert argv[0] == tls_files["etcdctl"] and f"--cacert={tls_files['cacert']}" in argv
    assert "ETCDCTL_ENDPOINTS" not in os.environ  # removed: etcdctl would abort


def test_module_fail_on_unhealthy(plugin_loader, monkeypatch, capsys, tls_files):
    doc = load("3.4.23", "member_stopped")
    args = dict(endpoints=doc["seed_endpoints"], fail_on_unhealthy=True, **tls_files)
    rc, result, _ = _run_module(plugin_loader, monkeypatch, capsys, doc, args)
    assert rc == 1 and result["failed"] and result["changed"] is False
    assert "member m3 (https://127.0.0.1:23793) unreachable" in result["msg"]
    assert result["status"]["has_quorum"]


def test_module_rejects_missing_etcdctl(plugin_loader, monkeypatch, capsys, tmp_path):
    doc = load("3.5.1", "healthy")
    args = dict(endpoints=doc["seed_endpoints"], etcdctl=str(tmp_path / "nope"))
    rc, result, fake = _run_module(plugin_loader, monkeypatch, capsys, doc, args)
    assert rc == 1 and "etcdctl not found" in result["msg"] and fake.calls == []


def test_filter_table(plugin_loader):
    flt = plugin_loader("filter/etcd_status.py", "etcd_status_filter")
    table = flt.FilterModule().filters()["etcd_status_table"]
    data = run_collect("3.5.1", "healthy")[0]
    healthy = table(data)
    lines = healthy.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["NAME", "ENDPOINT", "ID", "VERSION", "LEADER",
                                             "LEARNER", "HEALTHY", "REVISION", "RAFT TERM",
                                             "DB SIZE"]
    assert lines[1].split()[:3] == ["m1", "https://127.0.0.1:23791", "1c7c7f44ec57caf6"]
    assert lines[1].endswith(f"{data['members'][0]['db_size'] / 1024:.1f} KiB")
    assert f"leader:   {data['leader']['name']} ({data['leader']['id_hex']})" in lines
    assert "quorum:   3/3 voting members healthy, 2 needed (ok)" in lines
    assert "health:   HEALTHY" in lines and "problems: none" in lines

    stopped = table(run_collect("3.5.1", "member_stopped")[0])
    assert "health:   UNHEALTHY" in stopped
    assert "  - member m3 (https://127.0.0.1:23793) unreachable" in stopped
    row = next(ln for ln in stopped.splitlines() if ln.startswith("m3 "))
    assert row.split()[-4:] == ["no", "-", "-", "-"]  # healthy no; no revision/term/size

    unstarted = table(run_collect("3.4.23", "learner_unstarted")[0])
    assert "(unstarted)" in unstarted and "; 1 learner" in unstarted
    with pytest.raises(TypeError):
        table("not a dict")


# --------------------------------------------------------------------------
# Optional end-to-end: real cluster + `ansible localhost -m etcd_status`
# --------------------------------------------------------------------------

def _e2e_bindir() -> Optional[Path]:
    env = os.environ.get("ETCD_STATUS_E2E_BIN")
    candidates = [Path(env)] if env else []
    if shutil.which("etcd"):
        candidates.append(Path(shutil.which("etcd")).parent)
    for d in candidates:
        if (d / "etcd").is_file() and (d / "etcdctl").is_file():
            return d
    return None


@pytest.mark.skipif(_e2e_bindir() is None,
                    reason="set ETCD_STATUS_E2E_BIN to a directory with etcd and etcdctl")
def test_e2e_ansible_module_against_real_cluster(tmp_path):
    import importlib.util

    ansible = Path(sys.executable).parent / "ansible"
    if not ansible.exists():
        pytest.skip("ansible CLI not next to this python")
    spec = importlib.util.spec_from_file_location("etcd_capture", FIXTURES / "capture.py")
    cap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cap)

    work = tmp_path / "lab"
    (work / "pki").mkdir(parents=True)
    cap.make_pki(work / "pki")
    lab = cap.Lab(_e2e_bindir(), work, tmp_path)
    voters = [1, 2, 3]
    cfg = tmp_path / "ansible.cfg"  # keep the repo's (inventory, callbacks) out of it
    cfg.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(Path(__file__).resolve().parents[2] / "collections"),
               ANSIBLE_CONFIG=str(cfg), ANSIBLE_LOCALHOST_WARNING="false")
    eps = ",".join(cap.client_url(n) for n in voters)
    p = work / "pki"
    margs = (f"endpoints={eps} etcdctl={lab.etcdctl} cacert={p}/ca.crt "
             f"cert={p}/client.crt key={p}/client.key")

    def module_status() -> Dict[str, Any]:
        out = subprocess.run([str(ansible), "localhost", "-m", "controlplane.etcd.etcd_status", "-a", margs,
                              "-o"], env=env, capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout.split("=>", 1)[1])["status"]

    try:
        for n in voters:
            lab.start(n, voters, "new")
        lab.wait_healthy(voters)
        status = module_status()
        assert status["healthy"] and status["voting_members"] == 3 and status["leader"]
        lab.stop(3)
        time.sleep(1)
        status = module_status()
        assert not status["healthy"] and status["has_quorum"]
        assert any(p.startswith("member m3 ") for p in status["problems"])
    finally:
        lab.stop_all()


# --------------------------------------------------------------------------
# /version document and the auth probe
# --------------------------------------------------------------------------

def test_parse_version_document():
    from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import parse_version_document

    assert parse_version_document('{"etcdserver":"3.5.30","etcdcluster":"3.5.0"}') == ("3.5.30", "3.5.0")
    assert parse_version_document('{"etcdserver":"3.5.30","etcdcluster":"not_decided"}') == ("3.5.30", "not_decided")
    for garbage in ("", "404 page not found", "[1, 2]", '"3.5.30"', "null"):
        assert parse_version_document(garbage) == ("", ""), garbage


class FakeAuthCtl:
    """ctl(endpoints, *args) answering `auth status` and the probe `get` with canned output."""

    def __init__(self, auth_status: Tuple[int, str, str], probe_get: Tuple[int, str, str] = (0, "", "")) -> None:
        self.answers = {"auth": auth_status, "get": probe_get}
        self.calls: List[Tuple[List[str], Tuple[str, ...]]] = []

    def __call__(self, endpoints, *args: str) -> Tuple[int, str, str]:
        self.calls.append((list(endpoints), args))
        return self.answers[next(a for a in args if not a.startswith("-"))]


EPS = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
NO_AUTH_STATUS = (1, "", 'Error: unknown command "status" for "etcdctl auth"\n'
                         "Run 'etcdctl auth --help' for usage.\n")  # etcdctl 3.4


@pytest.mark.parametrize("out, enabled", [("Authentication Status: true\nAuthRevision: 3\n", True),
                                          ("Authentication Status: false\nAuthRevision: 1\n", False)])
def test_probe_auth_reads_auth_status(out, enabled):
    from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import probe_auth

    ctl = FakeAuthCtl((0, out, ""))
    assert probe_auth(ctl, EPS) == (enabled, "")
    assert ctl.calls == [(EPS, ("auth", "status"))]  # no probe login needed


def test_probe_auth_on_34_logs_in_with_a_made_up_user():
    from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import probe_auth

    refused = (1, "", "Error: etcdserver: authentication failed, invalid user ID or password\n")
    ctl = FakeAuthCtl(NO_AUTH_STATUS, refused)
    assert probe_auth(ctl, EPS) == (True, "")
    endpoints, args = ctl.calls[1]
    assert endpoints == EPS and args[0].startswith("--user=") and "get" in args
    assert probe_auth(FakeAuthCtl(NO_AUTH_STATUS, (0, "", "")), EPS) == (False, "")


def test_probe_auth_that_cannot_tell_says_why():
    from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import probe_auth

    ctl = FakeAuthCtl(NO_AUTH_STATUS, (1, "", "Error: context deadline exceeded\n"))
    assert probe_auth(ctl, EPS) == (None, "context deadline exceeded")
    ctl = FakeAuthCtl((1, "", "Error: open /etc/etcd/pki/admin.crt: permission denied\n"),
                      (1, "", "Error: open /etc/etcd/pki/admin.crt: permission denied\n"))
    assert probe_auth(ctl, EPS) == (None, "open /etc/etcd/pki/admin.crt: permission denied")


def test_probe_auth_never_sends_auth_status_while_a_member_runs_3_4():
    """AuthStatus through a 3.5 member to a 3.4 leader makes the 3.4 member panic (seen in the lab)."""
    from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import probe_auth

    refused = (1, "", "Error: etcdserver: authentication failed, invalid user ID or password\n")
    # auth status would answer "false" here: it must not be asked at all.
    ctl = FakeAuthCtl((0, "Authentication Status: false\n", ""), refused)
    assert probe_auth(ctl, EPS, ["3.4.23", "3.5.30"]) == (True, "")
    assert len(ctl.calls) == 1 and ctl.calls[0][1][0].startswith("--user=")
    ctl = FakeAuthCtl((0, "Authentication Status: false\n", ""))
    assert probe_auth(ctl, EPS, ["3.5.16", "3.5.30"]) == (False, "")
    assert ctl.calls == [(EPS, ("auth", "status"))]


class _Healthy:
    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy


def test_wait_healthy_polls_until_every_member_is_healthy(monkeypatch):
    readings = iter([False, False, True, False])
    monkeypatch.setattr(etcd_status_mod, "collect", lambda ctl, endpoints: _Healthy(next(readings)))
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    status, waited = etcd_status_mod.wait_healthy(None, ["https://a:2379"], 10, clock=lambda: now[0], sleep=sleep)
    assert status.healthy and slept == [0.25, 0.25] and waited == 0.5


def test_wait_healthy_gives_up_after_the_timeout_with_the_last_status(monkeypatch):
    monkeypatch.setattr(etcd_status_mod, "collect", lambda ctl, endpoints: _Healthy(False))
    now = [0.0]
    status, waited = etcd_status_mod.wait_healthy(
        None, ["https://a:2379"], 2, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert not status.healthy and 2 <= waited < 2.5
