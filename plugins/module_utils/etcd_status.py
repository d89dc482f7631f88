# -*- coding: utf-8 -*-
"""Read etcd cluster status from etcdctl v3 JSON output.

One shared layer for every playbook that needs to know "who is in the
cluster, who leads, is it healthy": parsers for ``member list``,
``endpoint status`` and ``endpoint health`` (``-w json``), a
:class:`ClusterStatus` that assembles them, and a small :class:`Etcdctl`
argv builder that runs through an injected ``run_command``-like callable.

Runs on managed hosts: stdlib only, Python 3.9+ syntax.
Behaviour notes below were observed on etcdctl 3.4.23, 3.5.1 and 3.5.30 (see
tests/unit/fixtures/etcd_status).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "EtcdStatusError", "MemberInfo", "MemberList", "EndpointStatus", "EndpointHealth",
    "Probe", "MemberStatus", "ClusterStatus", "Etcdctl",
    "iter_json_docs", "parse_member_list", "parse_endpoint_status", "parse_endpoint_health",
    "parse_status_failures", "command_error", "id_hex", "build_cluster_status", "probe",
    "collect", "FLAG_ENV", "client_argument_spec", "format_table", "human_bytes", "table_lines",
]

# (argv, environ_update=...) -> (rc, stdout, stderr), like AnsibleModule.run_command.
Runner = Callable[..., Tuple[int, str, str]]


class EtcdStatusError(Exception):
    """etcdctl output could not be understood."""


def id_hex(value: int) -> str:
    """Member/cluster ID as etcdctl prints it and as member remove/promote/move-leader
    parse it (strconv.ParseUint(s, 16, 64)): lowercase hex, no zero padding."""
    return format(value, "x")


def _as_id(value: Any) -> int:
    # Plain JSON carries uint64 IDs as decimal numbers; etcdctl 3.5 `--hex`
    # turns them into hex strings. Accept both.
    if isinstance(value, str):
        return int(value, 16) if value else 0
    return int(value or 0)


# --------------------------------------------------------------------------
# Raw output handling
# --------------------------------------------------------------------------

_JSON_START = re.compile(r"[\[{]")


def iter_json_docs(text: str) -> Iterator[Any]:
    """Yield every JSON array/object found in ``text``.

    etcdctl may print several documents, or mix zap log lines in; skipping
    anything that does not decode keeps one stray line from losing the rest.
    """
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        match = _JSON_START.search(text, pos)
        if match is None:
            return
        try:
            doc, end = decoder.raw_decode(text, match.start())
        except ValueError:
            pos = match.start() + 1
            continue
        yield doc
        pos = end


# "Failed to get the status of endpoint https://h:2379 (context deadline exceeded)"
_STATUS_FAILED = re.compile(r"^Failed to get the status of endpoint (\S+) \((.*)\)\s*$", re.M)


def _root_cause(grpc_error: str) -> str:
    # gRPC nests causes as "... desc = ... desc = \"transport: ... connection refused\"";
    # the innermost one says *why* (refused, x509, learner), the outer ones don't.
    tail = grpc_error.rsplit("desc = ", 1)[-1].strip()
    return tail.strip('"').replace('\\"', '"')


def _log_errors(stderr: str) -> List[str]:
    """Root causes from etcdctl's zap JSON log lines on stderr, in order."""
    causes: List[str] = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("error"):
            causes.append(_root_cause(str(entry["error"])))
        elif entry.get("level") in ("error", "fatal", "panic") and entry.get("msg"):
            extra = entry.get("environment-variable")  # the ETCDCTL_* env conflict
            causes.append(f"{entry['msg']} ({extra})" if extra else str(entry["msg"]))
    return causes


def _with_cause(message: str, stderr: str) -> str:
    """``message`` plus the first distinct root cause from the log lines."""
    for cause in _log_errors(stderr):
        if cause and cause not in message and message not in cause:
            return f"{message} ({cause})"
    return message


def parse_status_failures(stderr: str) -> Dict[str, str]:
    """Endpoints ``endpoint status`` could not reach, mapped to the reason.

    etcdctl reports these only on stderr; stdout just omits the endpoint.
    """
    return {ep: _with_cause(err, stderr) for ep, err in _STATUS_FAILED.findall(stderr)}


def command_error(rc: int, stdout: str, stderr: str) -> str:
    """Best one-line explanation of a failed etcdctl call."""
    failures = parse_status_failures(stderr)
    if failures:
        return "; ".join(failures.values())
    errors = [ln[len("Error:"):].strip() for ln in stderr.splitlines() if ln.startswith("Error:")]
    # "unhealthy cluster" is only etcdctl's summary; a log line usually says more.
    errors = [e for e in errors if e != "unhealthy cluster"] or errors
    if errors:
        return _with_cause(errors[-1], stderr)
    causes = _log_errors(stderr)
    if causes:
        return causes[-1]
    # capnslog (3.4) fatal lines: "2026-01-01 00:00:00.0 C | pkg/flags: ..."
    lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
    if lines:
        return re.sub(r"^\S+ \S+ [A-Z] \| ", "", lines[-1])
    return f"etcdctl exited with rc={rc} and no output"


# --------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------

@dataclass
class MemberInfo:
    """One entry of ``member list``."""

    id: int
    name: str
    peer_urls: List[str]
    client_urls: List[str]
    is_learner: bool

    @property
    def id_hex(self) -> str:
        return id_hex(self.id)

    @property
    def started(self) -> bool:
        # A member that was added but never started has no name yet
        # (and no client URLs); 3.4 and 3.5 both omit the "name" key.
        return bool(self.name)


@dataclass
class MemberList:
    cluster_id: int
    responder_id: int  # header.member_id: which member answered
    raft_term: int
    members: List[MemberInfo]


def parse_member_list(stdout: str) -> MemberList:
    """Parse ``etcdctl member list -w json``.

    Avoid ``--hex`` with JSON: etcdctl 3.5 then renames clientURLs to
    "clientURLS" and drops isLearner; 3.4 ignores --hex. Both are accepted
    here anyway, but isLearner cannot be recovered from 3.5 --hex output.
    """
    for doc in iter_json_docs(stdout):
        if isinstance(doc, dict) and "members" in doc:
            header = doc.get("header") or {}
            members = [
                MemberInfo(
                    id=_as_id(m.get("ID")),
                    name=m.get("name") or "",
                    peer_urls=list(m.get("peerURLs") or []),
                    client_urls=list(m.get("clientURLs") or m.get("clientURLS") or []),
                    is_learner=bool(m.get("isLearner", False)),
                )
                for m in doc.get("members") or []
            ]
            return MemberList(
                cluster_id=_as_id(header.get("cluster_id")),
                responder_id=_as_id(header.get("member_id")),
                raft_term=int(header.get("raft_term") or 0),
                members=members,
            )
    raise EtcdStatusError("no member list JSON in etcdctl output")


@dataclass
class EndpointStatus:
    """One entry of ``endpoint status``. The JSON uses omitempty, so a
    missing field means false/0/empty: no "leader" means no leader known."""

    endpoint: str
    member_id: int
    cluster_id: int
    version: str
    db_size: int
    db_size_in_use: int
    leader: int
    revision: int
    raft_term: int
    raft_index: int
    raft_applied_index: int
    is_learner: bool
    errors: List[str]
    storage_version: str = ""  # 3.6+
    db_size_quota: int = 0  # 3.6+

    @property
    def is_leader(self) -> bool:
        # Exactly what etcdctl's table printer does.
        return self.leader != 0 and self.leader == self.member_id


def parse_endpoint_status(stdout: str) -> List[EndpointStatus]:
    """Parse ``etcdctl endpoint status -w json``. Unreachable endpoints are
    simply absent here; see :func:`parse_status_failures` for those."""
    result: List[EndpointStatus] = []
    for doc in iter_json_docs(stdout):
        entries = doc if isinstance(doc, list) else [doc]
        for entry in entries:
            if not isinstance(entry, dict) or "Status" not in entry:
                continue
            st = entry.get("Status") or {}
            header = st.get("header") or {}
            result.append(EndpointStatus(
                endpoint=str(entry.get("Endpoint") or ""),
                member_id=_as_id(header.get("member_id")),
                cluster_id=_as_id(header.get("cluster_id")),
                version=str(st.get("version") or ""),
                db_size=int(st.get("dbSize") or 0),
                db_size_in_use=int(st.get("dbSizeInUse") or 0),
                leader=_as_id(st.get("leader")),
                revision=int(header.get("revision") or 0),
                raft_term=int(st.get("raftTerm") or header.get("raft_term") or 0),
                raft_index=int(st.get("raftIndex") or 0),
                raft_applied_index=int(st.get("raftAppliedIndex") or 0),
                is_learner=bool(st.get("isLearner", False)),
                # Alarm strings carry a trailing space ("alarm:NOSPACE ").
                errors=[str(e).strip() for e in st.get("errors") or []],
                storage_version=str(st.get("storageVersion") or ""),
                db_size_quota=int(st.get("dbSizeQuota") or 0),
            ))
    return result


@dataclass
class EndpointHealth:
    endpoint: str
    health: bool
    took: str
    error: str


def parse_endpoint_health(stdout: str) -> List[EndpointHealth]:
    """Parse ``etcdctl endpoint health -w json`` (printed even when rc != 0)."""
    result: List[EndpointHealth] = []
    for doc in iter_json_docs(stdout):
        entries = doc if isinstance(doc, list) else [doc]
        for entry in entries:
            if isinstance(entry, dict) and "health" in entry:
                result.append(EndpointHealth(
                    endpoint=str(entry.get("endpoint") or ""),
                    health=bool(entry.get("health")),
                    took=str(entry.get("took") or ""),
                    error=str(entry.get("error") or "").strip(),
                ))
    return result


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------

# "memberID:2052655464173783798 alarm:NOSPACE" inside Status.errors
_ALARM = re.compile(r"memberID:(\d+) alarm:(\w+)")
# 3.5+ endpoint health: "Active Alarm(s): NOSPACE" (3.4.23 does not check alarms)
_HEALTH_ALARM = "Active Alarm(s)"
# Learners refuse the linearizable read endpoint health does.
_LEARNER_REFUSAL = "rpc not supported for learner"


@dataclass
class Probe:
    """What was learned by probing one member's client URL."""

    endpoint: str
    status: Optional[EndpointStatus] = None
    health: Optional[EndpointHealth] = None
    error: str = ""  # why status could not be read


@dataclass
class MemberStatus:
    name: str
    id_hex: str
    peer_urls: List[str]
    client_urls: List[str]
    is_learner: bool
    started: bool
    endpoint: str = ""  # client URL that was probed
    reachable: bool = False  # endpoint status answered
    version: str = ""
    storage_version: str = ""
    db_size: int = 0
    db_size_in_use: int = 0
    db_size_quota: int = 0
    revision: int = 0
    raft_term: int = 0
    raft_index: int = 0
    raft_applied_index: int = 0
    leader_id_hex: str = ""  # whom this member follows ("" = no leader)
    is_leader: bool = False
    healthy: bool = False
    health_took: str = ""  # how long endpoint health took (Go duration, e.g. "12.3ms")
    errors: List[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """How problems name a member: "m3 (https://10.0.0.3:2379)"."""
        who = self.name or self.id_hex
        if who and self.endpoint:
            return f"{who} ({self.endpoint})"
        return who or self.endpoint or "?"


@dataclass
class ClusterStatus:
    cluster_id: str
    members: List[MemberStatus]
    leader: Optional[Dict[str, str]]
    leaders_seen: List[str]
    voting_members: int
    learners: int
    quorum: int
    healthy_voters: int
    has_quorum: bool
    healthy: bool
    versions: List[str]
    revision: int
    revision_spread: int
    alarms: List[Dict[str, str]]
    problems: List[str]

    def member(self, name_or_id: str) -> Optional[MemberStatus]:
        for m in self.members:
            if name_or_id in (m.name, m.id_hex):
                return m
        return None

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able data (module return value, filter input)."""
        return asdict(self)


def _version_key(version: str) -> List[Any]:
    # Display order only ("3.10.0" after "3.9.9"); real comparisons live elsewhere.
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-+]", version)]


def _member_healthy(m: MemberStatus, st: EndpointStatus, health: Optional[EndpointHealth]) -> bool:
    # Alarms are cluster-wide and reported separately; they do not make one
    # member unable to serve, so they are left out of per-member health.
    real_errors = [e for e in st.errors if not _ALARM.search(e)]
    if real_errors or st.leader == 0:
        return False
    if m.is_learner:
        return True  # learners can't pass endpoint health; status is all they offer
    if health is None:
        return False
    return health.health or health.error.startswith(_HEALTH_ALARM)


def _match_probes(member_list: Optional[MemberList], probes: Sequence[Probe],
                  problems: List[str]) -> Tuple[List[MemberInfo], Dict[int, Probe]]:
    """Pair members with the probe of their client URL.

    A probe only counts for a member if that member answered (a wrong URL
    may reach another one). Without a member list, membership is rebuilt
    from the probed endpoints; dead ones stay as anonymous voters (negative
    IDs) so the quorum math is not flattered.
    """
    infos = list(member_list.members) if member_list else []
    own: Dict[int, Probe] = {}
    used = set()
    for info in infos:
        for i, p in enumerate(probes):
            if i not in used and p.endpoint in info.client_urls:
                own[info.id] = p
                used.add(i)
                break
    for info in infos:  # probed under another URL (e.g. an IP instead of a name)
        for i, p in enumerate(probes):
            if info.id not in own and i not in used and p.status and p.status.member_id == info.id:
                own[info.id] = p
                used.add(i)
    known_ids = {i.id for i in infos}
    for i, p in enumerate(probes):
        st = p.status
        if i in used or (st is not None and st.member_id in known_ids):
            continue
        if member_list is None:
            mid = st.member_id if st is not None else -(i + 1)
            infos.append(MemberInfo(mid, "", [], [p.endpoint], bool(st and st.is_learner)))
            own[mid] = p
            known_ids.add(mid)
        elif st is not None:
            problems.append(f"endpoint {p.endpoint} answered as member {id_hex(st.member_id)}, "
                            "which is not in the member list")
    return infos, own


def _member_status(info: MemberInfo, pr: Optional[Probe], listed: bool,
                   problems: List[str]) -> MemberStatus:
    """One member's row: member list data plus what its probe found."""
    m = MemberStatus(name=info.name, id_hex=info.id_hex if info.id >= 0 else "",
                     peer_urls=info.peer_urls, client_urls=info.client_urls,
                     is_learner=info.is_learner, started=info.started or not listed)
    if pr is None:
        if not info.started:
            m.errors.append("added but never started")
            kind = "learner" if info.is_learner else "voting member"
            peers = ", ".join(info.peer_urls) or "no peer URL"
            problems.append(f"{kind} {m.label} (peer {peers}) was added but never started")
        else:
            m.errors.append("not probed: no client URL")
            problems.append(f"member {m.label} has no client URL to probe")
        return m
    m.endpoint = pr.endpoint
    st = pr.status
    if st is None or st.member_id != info.id:
        err = pr.error or "no status returned"
        if st is not None:
            err = f"endpoint answered as member {id_hex(st.member_id)}"
        m.errors.append(err)
        problems.append(f"member {m.label} unreachable: {err}")
        return m
    m.reachable = True
    m.version, m.storage_version = st.version, st.storage_version
    m.db_size, m.db_size_in_use, m.db_size_quota = st.db_size, st.db_size_in_use, st.db_size_quota
    m.revision, m.raft_term = st.revision, st.raft_term
    m.raft_index, m.raft_applied_index = st.raft_index, st.raft_applied_index
    m.leader_id_hex = id_hex(st.leader) if st.leader else ""
    m.is_leader = st.is_leader
    m.is_learner = m.is_learner or st.is_learner
    m.errors.extend(st.errors)
    health = pr.health
    m.health_took = health.took if health is not None else ""
    if health is not None and health.error and not health.error.startswith(_HEALTH_ALARM):
        if not (m.is_learner and _LEARNER_REFUSAL in health.error):
            m.errors.append(health.error)
    m.healthy = _member_healthy(m, st, health)
    if not m.healthy:
        faults = [e for e in m.errors if not _ALARM.search(e)]
        if st.leader == 0 and "etcdserver: no leader" not in faults:
            faults.insert(0, "no leader")
        problems.append(f"member {m.label} unhealthy: {'; '.join(faults) or 'health check failed'}")
    return m


def build_cluster_status(
    member_list: Optional[MemberList],
    probes: Sequence[Probe],
    member_list_error: str = "",
) -> ClusterStatus:
    """Combine a member list and per-member probes into one ClusterStatus.

    Without a member list (e.g. 3.5 refuses it without quorum) the members
    are reconstructed from whatever endpoints were probed.
    """
    problems: List[str] = []
    if member_list is None:
        problems.append(f"member list failed: {member_list_error or 'no output'}")
    infos, own = _match_probes(member_list, probes, problems)
    members = [_member_status(i, own.get(i.id), member_list is not None, problems)
               for i in infos]

    reachable = [m for m in members if m.reachable]
    names = {m.id_hex: m.name for m in members}

    cluster_ids = {p.status.cluster_id for p in probes if p.status is not None}
    if member_list is not None:
        cluster_ids.add(member_list.cluster_id)
    if len(cluster_ids) > 1:
        problems.append("endpoints belong to different clusters: "
                        + ", ".join(sorted(id_hex(c) for c in cluster_ids)))
    if member_list is not None:
        cluster_id = id_hex(member_list.cluster_id)
    else:
        cluster_id = id_hex(min(cluster_ids)) if cluster_ids else ""

    # Leader: every reachable member must name the same one.
    leaders_seen = sorted({m.leader_id_hex for m in reachable if m.leader_id_hex})
    leader: Optional[Dict[str, str]] = None
    if len(leaders_seen) == 1:
        lid = leaders_seen[0]
        lm = next((m for m in members if m.id_hex == lid), None)
        leader = {"name": names.get(lid, ""), "id_hex": lid, "endpoint": lm.endpoint if lm else ""}
        if lm is None and member_list is not None:
            problems.append(f"leader {lid} is not in the member list")
    elif len(leaders_seen) > 1:
        views = ", ".join(f"{m.name or m.id_hex} sees {names.get(m.leader_id_hex) or m.leader_id_hex}"
                          for m in reachable if m.leader_id_hex)
        problems.append(f"members disagree on the leader: {views}")
    elif reachable:
        problems.append("no member reports a leader")
    without_leader = [m for m in reachable if not m.leader_id_hex]
    leader_agreed = len(leaders_seen) == 1 and not without_leader

    # Alarms are replicated: every member lists all of them, so dedupe.
    alarm_set = set()
    for m in reachable:
        for e in m.errors:
            for mid, kind in _ALARM.findall(e):
                alarm_set.add((id_hex(int(mid)), kind))
    alarms = [{"member_id_hex": mid, "member": names.get(mid, ""), "alarm": kind}
              for mid, kind in sorted(alarm_set)]
    for a in alarms:
        problems.append(f"alarm {a['alarm']} raised by member {a['member'] or a['member_id_hex']}")

    voters = [m for m in members if not m.is_learner]
    learners = [m for m in members if m.is_learner]
    quorum = len(voters) // 2 + 1 if voters else 0
    healthy_voters = sum(1 for m in voters if m.healthy)
    has_quorum = bool(voters) and healthy_voters >= quorum
    if voters and not has_quorum:
        problems.append(f"quorum lost: {healthy_voters} of {len(voters)} voting members healthy, "
                        f"{quorum} needed")

    revisions = [m.revision for m in reachable]
    healthy = (
        member_list is not None
        and bool(voters)
        and all(m.healthy for m in voters)
        and leader_agreed
        and leader is not None and names.get(leader["id_hex"]) is not None
        and not alarms
        and len(cluster_ids) == 1
    )
    return ClusterStatus(
        cluster_id=cluster_id,
        members=members,
        leader=leader,
        leaders_seen=leaders_seen,
        voting_members=len(voters),
        learners=len(learners),
        quorum=quorum,
        healthy_voters=healthy_voters,
        has_quorum=has_quorum,
        healthy=healthy,
        versions=sorted({m.version for m in reachable if m.version}, key=_version_key),
        revision=max(revisions) if revisions else 0,
        revision_spread=(max(revisions) - min(revisions)) if revisions else 0,
        alarms=alarms,
        problems=problems,
    )


# --------------------------------------------------------------------------
# Running etcdctl
# --------------------------------------------------------------------------

# Settings we always pass as flags. etcdctl aborts ("conflicting environment
# variable ... is shadowed by corresponding command-line flag") when one of
# them is also set in the environment, even to an empty string, so callers
# must unset these (see Etcdctl.clashing_env). ETCDCTL_USER/PASSWORD are not
# flags we pass and keep working from the environment.
FLAG_ENV = ("ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY",
            "ETCDCTL_DIAL_TIMEOUT", "ETCDCTL_COMMAND_TIMEOUT", "ETCDCTL_WRITE_OUT")


def client_argument_spec() -> Dict[str, Dict[str, Any]]:
    """Module options for reaching etcd through etcdctl (doc fragment controlplane.etcd.etcd_client)."""
    return dict(
        endpoints=dict(type="list", elements="str", required=True),
        cacert=dict(type="path"),
        cert=dict(type="path"),
        key=dict(type="path", no_log=False),
        etcdctl=dict(type="path", default="/usr/local/bin/etcdctl"),
        dial_timeout=dict(type="str", default="3s"),
        command_timeout=dict(type="str", default="5s"),
    )


@dataclass
class Etcdctl:
    """Builds etcdctl argv lists (never a shell string) and runs them."""

    run: Runner
    etcdctl: str = "/usr/local/bin/etcdctl"
    cacert: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None
    dial_timeout: str = "3s"
    command_timeout: str = "5s"

    def argv(self, endpoints: Sequence[str], *args: str) -> List[str]:
        if not endpoints:
            raise ValueError("etcdctl needs at least one endpoint")
        argv = [self.etcdctl, "--endpoints=" + ",".join(endpoints)]
        for flag, value in (("--cacert", self.cacert), ("--cert", self.cert), ("--key", self.key)):
            if value:
                argv.append(f"{flag}={value}")
        argv += [f"--dial-timeout={self.dial_timeout}",
                 f"--command-timeout={self.command_timeout}", *args]
        return argv

    @property
    def environ(self) -> Dict[str, str]:
        # 3.4+ defaults to v3 anyway, but a host-wide ETCDCTL_API=2 would win.
        return {"ETCDCTL_API": "3"}

    @staticmethod
    def clashing_env(environ: Mapping[str, str]) -> List[str]:
        """Names in ``environ`` that would make etcdctl abort; unset them
        (run_command's environ_update can only add, not remove)."""
        return [name for name in FLAG_ENV if name in environ]

    def __call__(self, endpoints: Sequence[str], *args: str) -> Tuple[int, str, str]:
        rc, out, err = self.run(self.argv(endpoints, *args), environ_update=self.environ)
        return rc, out or "", err or ""

    def member_list(self, endpoints: Sequence[str]) -> Tuple[int, str, str]:
        return self(endpoints, "member", "list", "-w", "json")

    def endpoint_status(self, endpoint: str) -> Tuple[int, str, str]:
        return self([endpoint], "endpoint", "status", "-w", "json")

    def endpoint_health(self, endpoint: str) -> Tuple[int, str, str]:
        return self([endpoint], "endpoint", "health", "-w", "json")


def _is_loopback(url: str) -> bool:
    host = re.sub(r"^[a-z]+://", "", url).rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _probe_url(info: MemberInfo, endpoints: Sequence[str]) -> str:
    # Prefer what the caller listed; otherwise avoid loopback URLs, which on
    # this host would reach the local member instead of the one advertised.
    for url in info.client_urls:
        if url in endpoints:
            return url
    for url in info.client_urls:
        if not _is_loopback(url):
            return url
    return info.client_urls[0] if info.client_urls else ""


def probe(ctl: Etcdctl, endpoint: str, learner: bool = False) -> Probe:
    """endpoint status, then endpoint health, against one endpoint only."""
    result = Probe(endpoint=endpoint)
    rc, out, err = ctl.endpoint_status(endpoint)
    statuses = parse_endpoint_status(out)
    if not statuses:
        result.error = parse_status_failures(err).get(endpoint) or command_error(rc, out, err)
        return result  # unreachable: health would just time out a second time
    result.status = statuses[0]
    if learner or result.status.is_learner:
        return result  # learners reject health's linearizable read (and retry for ~2.5s)
    rc, out, err = ctl.endpoint_health(endpoint)
    checks = parse_endpoint_health(out)
    if checks:
        result.health = checks[0]
        if not checks[0].health and not checks[0].error:
            result.health.error = command_error(rc, out, err)
        elif checks[0].error:
            result.health.error = _with_cause(_root_cause(checks[0].error), err)
    else:
        result.health = EndpointHealth(endpoint, False, "", command_error(rc, out, err))
    return result


def collect(ctl: Etcdctl, endpoints: Sequence[str]) -> ClusterStatus:
    """Member list via all ``endpoints``, then status + health per member
    client URL, one call each, so one dead member cannot hide the others."""
    rc, out, err = ctl.member_list(endpoints)
    member_list: Optional[MemberList] = None
    list_error = ""
    try:
        member_list = parse_member_list(out)
    except EtcdStatusError:
        list_error = command_error(rc, out, err)

    probes: List[Probe] = []
    if member_list is not None:
        for info in member_list.members:
            url = _probe_url(info, endpoints)
            if url:
                probes.append(probe(ctl, url, learner=info.is_learner))
    else:
        # Without the list, probe what we were given (3.5 needs quorum for it).
        probes = [probe(ctl, ep) for ep in endpoints]
    return build_cluster_status(member_list, probes, list_error)


def wait_healthy(ctl: Etcdctl, endpoints: Sequence[str], timeout: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 interval: float = 0.25) -> Tuple[ClusterStatus, float]:
    """Read the status until the cluster is healthy or ``timeout`` seconds pass: (last status, seconds).

    Members that start together answer within a second of each other; polling here, not
    with Ansible's retries, costs one etcdctl round per ``interval`` instead of a task per try.
    """
    start = clock()
    while True:
        status = collect(ctl, endpoints)
        if status.healthy or clock() - start >= timeout:
            return status, clock() - start
        sleep(interval)


def probe_auth(ctl: Etcdctl, endpoints: Sequence[str], versions: Sequence[str] = ()) -> Tuple[Optional[bool], str]:
    """Whether etcd authentication is on: (True/False, "") or (None, why it could not be told).

    `auth status` where every member runs 3.5+; else a login with a made-up user, which only
    fails when auth is on. Read-only either way. AuthStatus is a raft request in 3.5 that 3.4
    cannot apply: sent through a 3.5 member to a 3.4 leader (half-way through a 3.4 -> 3.5
    upgrade) it makes the 3.4 member panic ("not implemented", apply.go), so it is never sent
    while any member runs 3.4 (seen here with 3.4.23 and 3.5.30).
    """
    if not versions or all(not str(v).startswith("3.4.") for v in versions):
        rc, out, err = ctl(endpoints, "auth", "status")
        for line in out.splitlines():
            if line.startswith("Authentication Status:"):
                return line.split(":", 1)[1].strip() == "true", ""
    rc, out, err = ctl(endpoints, "--user=etcd-toolkit-auth-probe:-", "get", "--keys-only", "etcd-toolkit-auth-probe")
    if rc == 0:
        return False, ""
    if "authentication failed" in err or "invalid user ID or password" in err:
        return True, ""
    return None, command_error(rc, out, err)


def parse_version_document(text: str) -> Tuple[str, str]:
    """(server, cluster) versions from a member's /version JSON; cluster is "not_decided" early on."""
    try:
        doc = json.loads(text)
    except ValueError:
        return "", ""
    if not isinstance(doc, dict):
        return "", ""
    return str(doc.get("etcdserver") or ""), str(doc.get("etcdcluster") or "")


def read_cluster_version(url: str, cacert: Optional[str], cert: Optional[str], key: Optional[str],
                         timeout: float = 5.0) -> Tuple[str, str]:
    """GET <client URL>/version over mutual TLS: (cluster version, error)."""
    # Imported here: the backup job on members loads this file without Ansible installed.
    from ansible.module_utils.urls import open_url

    try:
        answer = open_url(url.rstrip("/") + "/version", timeout=timeout, ca_path=cacert, client_cert=cert,
                          client_key=key)
        return parse_version_document(answer.read().decode("utf-8", "replace"))[1], ""
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
        return "", str(e)


# --- the status table (filter controlplane.etcd.etcd_status_table, status playbook) ---

COLUMNS = ("NAME", "ENDPOINT", "ID", "VERSION", "LEADER", "LEARNER", "HEALTHY",
           "REVISION", "RAFT TERM", "DB SIZE")


def human_bytes(n: Any) -> str:
    try:
        size = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # unreachable; keeps type checkers quiet


def _yes(flag: Any) -> str:
    return "yes" if flag else "no"


def _row(m: Mapping[str, Any]) -> List[str]:
    reachable = m.get("reachable", False)
    name = m.get("name") or ("(unstarted)" if not m.get("started", True) else "?")
    return [
        name,
        m.get("endpoint") or "-",
        m.get("id_hex") or "-",
        m.get("version") or "-",
        _yes(m.get("is_leader")) if reachable else "-",
        _yes(m.get("is_learner")),
        _yes(m.get("healthy")),
        str(m.get("revision")) if reachable else "-",
        str(m.get("raft_term")) if reachable else "-",
        human_bytes(m.get("db_size")) if reachable else "-",
    ]


def table_lines(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def format_table(status: Mapping[str, Any]) -> str:
    """The status as a fixed-width member table plus leader / quorum / health / problems lines."""
    if not isinstance(status, Mapping):
        raise TypeError("the status table needs the 'status' dict returned by etcd_status")
    members = status.get("members") or []
    lines = table_lines([list(COLUMNS)] + [_row(m) for m in members])

    leader = status.get("leader")
    if leader:
        lead = f"{leader.get('name') or '?'} ({leader.get('id_hex')})"
    elif len(status.get("leaders_seen") or []) > 1:
        lead = "NONE AGREED - members report " + ", ".join(status["leaders_seen"])
    else:
        lead = "NONE"
    learners = status.get("learners", 0)
    lines += [
        "",
        f"leader:   {lead}",
        f"quorum:   {status.get('healthy_voters', 0)}/{status.get('voting_members', 0)} voting "
        f"members healthy, {status.get('quorum', 0)} needed "
        f"({'ok' if status.get('has_quorum') else 'LOST'})"
        + (f"; {learners} learner{'s' if learners != 1 else ''}" if learners else ""),
        f"health:   {'HEALTHY' if status.get('healthy') else 'UNHEALTHY'}",
        f"versions: {', '.join(status.get('versions') or []) or '-'}; "
        f"revision {status.get('revision', 0)} (spread {status.get('revision_spread', 0)})",
    ]
    problems = status.get("problems") or []
    lines.append("problems: " + ("none" if not problems else ""))
    lines += [f"  - {p}" for p in problems]
    return "\n".join(line.rstrip() for line in lines)
