# -*- coding: utf-8 -*-
"""Restore drill: one snapshot restored into a throwaway cluster on this host's loopback, checked, torn down.

The scratch cluster is ``<cluster>-drill``: N members on 127.0.0.1 only (client port
base + 10 i, peer port base + 10 i + 1), every listener TLS with client-certificate
authentication against a CA made for this run alone. Its key never touches the disk, so no
other certificate can ever be signed by it, and production members (which trust another CA)
cannot talk to the scratch members nor they to production; loopback listeners keep other
hosts out. A new token (``<cluster>-drill-<stamp>``) keeps it from joining anything else.

A run:

1. ``<work_dir>/run-<UTC stamp>`` (0700, the owner's), certificates in ``pki/``;
2. ``snapshot restore`` of the same file into ``m<i>`` for each member (etcdutl on 3.5+,
   etcdctl on 3.4; no revision bump: the drill checks the snapshot's revision);
3. every member started at once as ``owner`` and polled over mTLS until all are healthy;
4. checked on every member: revision, live key count (serializable, against the member's
   own endpoint), one hashkv, the keys that must be present;
5. torn down whatever happened: processes stopped (SIGTERM, SIGKILL after 10 s), the run
   folder removed (nothing else is ever deleted);
6. a JSON report, a text table and Prometheus textfile metrics; a state file keeps the
   failure counter and the last success (with its RTO and RPO) between runs.

The engine (``drill``) takes the parameters as a mapping and an injectable command runner,
so it runs without Ansible. Needs ``cryptography`` for the certificates.

``scheduled`` is the timer's run (roles/etcd_drill/files/etcd-drill): it lists the backup job's
off-host rclone remote, copies the newest verified snapshot and its ``.sha256`` into
``<work_dir>/incoming``, reads what the file holds offline and drills it; the copies are
deleted afterwards. A run that fails before the drill is recorded as a failed drill.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_pki as pki
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_backup import (
    file_digests, last_line, metric_value, parse_snapshot_name, write_atomic)
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_restore import (
    latest_verified, restore_argv, restore_tool)
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_snapshot import SnapshotError, read_snapshot
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import (
    FLAG_ENV, Etcdctl, command_error, iter_json_docs, parse_endpoint_health, parse_endpoint_status, table_lines)

# run(argv, environ_update=None) -> (rc, stdout, stderr); AnsibleModule.run_command fits.
Runner = Callable[..., Tuple[int, str, str]]
Hook = Callable[[Dict[str, Any]], None]

LOOPBACK = "127.0.0.1"
METRICS_FILE = "etcd_restore_drill.prom"
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0
CERT_DAYS = 2  # the run's certificates outlive any drill, and nothing else
MIN_QUOTA = 2 * 1024 ** 3  # etcd's default backend quota
LOG_TAIL = 5
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# As the backup job's: an unreachable remote fails the drill in seconds, not after rclone's
# default ten low-level retries of each of three tries.
RCLONE_FLAGS = ["--contimeout", "10s", "--timeout", "600s", "--retries", "2", "--low-level-retries", "3"]
# What a scheduled drill cannot run without; the rest has the module's defaults.
SCHEDULED_REQUIRED = ("cluster", "remote", "rclone_config", "version")

METRICS_HELP = (
    ("etcd_restore_drill_last_run_timestamp_seconds", "gauge", "When the last restore drill finished."),
    ("etcd_restore_drill_last_success_timestamp_seconds", "gauge",
     "When a restore drill last succeeded (0: never)."),
    ("etcd_restore_drill_success", "gauge", "1 if the last restore drill succeeded, 0 if it failed."),
    ("etcd_restore_drill_rto_seconds", "gauge",
     "Restore plus start time of the last successful drill (the snapshot's copy not included)."),
    ("etcd_restore_drill_rpo_seconds", "gauge",
     "Age of the snapshot when the last successful drill started (the data a restore would lose)."),
    ("etcd_restore_drill_failures_total", "counter", "Failed restore drills."),
    ("etcd_restore_drill_max_age_seconds", "gauge",
     "Age of the last successful drill above which EtcdRestoreDrillStale fires (etcd_drill_max_age)."),
)
DEFAULT_MAX_AGE = 7 * 86400


class DrillError(Exception):
    """The drill cannot go on; the message names what was seen."""


@dataclass
class Settings:
    """The drill's parameters (the module's options)."""

    snapshot: str
    sha256: str
    expected_revision: int
    expected_keys: int
    version: str
    cluster: str
    bin_dir: str = "/usr/local/bin"
    members: int = 3
    base_port: int = 23790
    work_dir: str = "/var/lib/etcd-drill"
    expected_present: List[str] = field(default_factory=list)
    timeout: int = 300
    owner: str = "etcd"
    taken: Optional[str] = None
    textfile_dir: str = "/var/lib/prometheus/node-exporter"
    max_age: int = DEFAULT_MAX_AGE
    state_file: Optional[str] = None
    report_file: Optional[str] = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "Settings":
        known = {k: v for k, v in params.items() if k in cls.__dataclass_fields__ and v is not None}
        s = cls(**known)
        s.expected_revision, s.expected_keys = int(s.expected_revision), int(s.expected_keys)
        s.members, s.base_port, s.timeout = int(s.members), int(s.base_port), int(s.timeout)
        s.max_age = int(s.max_age)
        s.expected_present = [str(k) for k in s.expected_present or []]
        s.taken = None if s.taken in (None, "") else str(s.taken)
        s.state_file = s.state_file or os.path.join(s.work_dir, "state.json")
        s.report_file = s.report_file or os.path.join(s.work_dir, "last-report.json")
        return s

    def problems(self) -> List[str]:
        out = []
        if self.members < 1:
            out.append("members is %d: a drill needs at least one scratch member" % self.members)
        last = self.base_port + 10 * (self.members - 1) + 1
        if self.base_port < 1024 or last > 65535:
            out.append("base_port %d gives ports %d-%d: use a base between 1024 and %d"
                       % (self.base_port, self.base_port, last, 65535 - 10 * (self.members - 1) - 1))
        if self.timeout < 1:
            out.append("timeout is %d s: give the scratch cluster at least a second" % self.timeout)
        if self.max_age < 3600:
            out.append("max_age is %d s: drills are hours apart at best, give at least 3600" % self.max_age)
        return out


# --------------------------------------------------------------------------
# The plan: names, ports, folders, token
# --------------------------------------------------------------------------

def utc_stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def iso(when: Optional[float]) -> Optional[str]:
    if when is None:
        return None
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def plan(s: Settings, stamp: str) -> Dict[str, Any]:
    """Everything a run will use, decided before anything is made (check mode returns it)."""
    run_dir = os.path.join(s.work_dir, "run-" + stamp)
    members = []
    for i in range(1, s.members + 1):
        client, peer = s.base_port + 10 * i, s.base_port + 10 * i + 1
        members.append({"name": "drill-%d" % i, "client_port": client, "peer_port": peer,
                        "client_url": "https://%s:%d" % (LOOPBACK, client),
                        "peer_url": "https://%s:%d" % (LOOPBACK, peer),
                        "data_dir": os.path.join(run_dir, "m%d" % i),
                        "log": os.path.join(run_dir, "m%d.log" % i)})
    pki_dir = os.path.join(run_dir, "pki")
    return {
        "cluster": "%s-drill" % s.cluster,
        "token": "%s-drill-%s" % (s.cluster, stamp),
        "run_dir": run_dir,
        "tool": restore_tool(s.version)["binary"],
        "initial_cluster": ",".join("%s=%s" % (m["name"], m["peer_url"]) for m in members),
        "members": members,
        "pki": {name: os.path.join(pki_dir, name) for name in
                ("ca.crt", "member.crt", "member.key", "client.crt", "client.key")},
        "report_file": s.report_file,
        "state_file": s.state_file,
        "metrics_file": metrics_path(s.textfile_dir),
    }


def metrics_path(textfile_dir: str) -> Optional[str]:
    """Where the metrics go; None when node_exporter's textfile folder does not exist here."""
    return os.path.join(textfile_dir, METRICS_FILE) if textfile_dir and os.path.isdir(textfile_dir) else None


def member_argv(s: Settings, p: Mapping[str, Any], m: Mapping[str, Any], quota_bytes: int) -> List[str]:
    """One scratch member: loopback only, TLS with client certificates on both listeners, the run's CA."""
    c = p["pki"]
    return ["%s/etcd" % s.bin_dir, "--name", m["name"], "--data-dir", m["data_dir"],
            "--listen-client-urls", m["client_url"], "--advertise-client-urls", m["client_url"],
            "--listen-peer-urls", m["peer_url"], "--initial-advertise-peer-urls", m["peer_url"],
            "--initial-cluster", p["initial_cluster"], "--initial-cluster-token", p["token"],
            "--initial-cluster-state", "new",
            "--cert-file", c["member.crt"], "--key-file", c["member.key"], "--trusted-ca-file", c["ca.crt"],
            "--client-cert-auth",
            "--peer-cert-file", c["member.crt"], "--peer-key-file", c["member.key"],
            "--peer-trusted-ca-file", c["ca.crt"], "--peer-client-cert-auth",
            "--quota-backend-bytes", str(quota_bytes)]


def quota_for(snapshot_bytes: int) -> int:
    """Room for the restored database: a production quota above etcd's default must not raise NOSPACE here."""
    return max(MIN_QUOTA, 2 * snapshot_bytes)


def parse_taken(taken: Optional[str], snapshot: str) -> Optional[float]:
    """When the snapshot was taken (epoch seconds): ``taken`` (epoch or ISO 8601), else its name."""
    if taken:
        try:
            return float(taken)
        except ValueError:
            pass
        try:
            when = dt.datetime.fromisoformat(taken.strip().replace("Z", "+00:00"))
        except ValueError:
            raise DrillError("taken %r is neither epoch seconds nor an ISO 8601 time" % taken)
        return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()
    parsed = parse_snapshot_name(os.path.basename(snapshot))
    return parsed.taken.timestamp() if parsed else None


# --------------------------------------------------------------------------
# Making and removing the scratch cluster
# --------------------------------------------------------------------------

def owner_ids(owner: str) -> Tuple[int, int]:
    """(uid, primary gid) of the account the scratch members run as."""
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        raise DrillError("no account %r on this host: create it (a system account) or set owner" % owner)
    return entry.pw_uid, entry.pw_gid


def chown_tree(top: str, ids: Tuple[int, int]) -> None:
    for root, dirs, files in os.walk(top):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.lchown(name, *ids)


def make_pki(p: Mapping[str, Any], ids: Tuple[int, int]) -> None:
    """The run's CA (kept in memory only), one certificate for every member, one client certificate."""
    if pki.CRYPTOGRAPHY_ERROR:
        raise DrillError(pki.CRYPTOGRAPHY_ERROR)
    paths = p["pki"]
    folder = os.path.dirname(paths["ca.crt"])
    os.mkdir(folder, 0o700)
    os.chown(folder, *ids)
    ca_key = pki.new_key("ECC")
    ca_pem = pki.self_sign_ca(ca_key, "%s CA %s" % (p["cluster"], p["token"]), CERT_DAYS)
    ca = pki.x509.load_pem_x509_certificate(ca_pem.encode())
    pki.write_file(paths["ca.crt"], ca_pem.encode(), 0o644, ids)
    # CN root: with authentication on in the snapshot, a client certificate is the etcd user of
    # its CN, and a user named root always exists there. Only this drill's throwaway CA signs it.
    wants = {"member": pki.Want(name="member", cn=p["cluster"], eku=["serverAuth", "clientAuth"],
                                sans=["IP:%s" % LOOPBACK]),
             "client": pki.Want(name="client", cn="root", eku=["clientAuth"])}
    for stem, want in wants.items():
        key = pki.new_key("ECC")
        pki.write_file(paths[stem + ".key"], pki.key_pem(key), 0o600, ids)
        cert = pki.sign_leaf(pki.public_pem(key), want, ca, ca_key, CERT_DAYS)
        pki.write_file(paths[stem + ".crt"], cert.encode(), 0o644, ids)


def ports_in_use(p: Mapping[str, Any]) -> List[int]:
    busy = []
    for m in p["members"]:
        for port in (m["client_port"], m["peer_port"]):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # As etcd (Go) binds: closed connections in TIME_WAIT do not count, a listener does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    busy.append(port)
    return busy


def start_member(argv: Sequence[str], log: str, cwd: str, ids: Tuple[int, int]) -> "subprocess.Popen[bytes]":
    """etcd as the owner, in its own session (stopped as a group), with an environment of its own:
    ETCD_* variables of this host would otherwise set flags of the scratch member."""
    as_other = ids[0] != os.geteuid()
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": cwd}
    with open(log, "ab") as out:
        os.chown(log, *ids)
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env=env, start_new_session=True, close_fds=True,
                                user=ids[0] if as_other else None, group=ids[1] if as_other else None,
                                extra_groups=[] if as_other else None)


def stop_members(procs: Sequence["subprocess.Popen[bytes]"], leaders: Sequence[bool] = (),
                 grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to each member's process group, SIGKILL to what still runs ``grace`` seconds later.

    The followers go first, the leader (where known) after them: a leader stopped with its
    followers waits about 6 s to hand its leadership over to members that are going away.
    """
    last = [proc for proc, leads in zip(procs, leaders) if leads]
    for group in ([proc for proc in procs if proc not in last], last):
        for proc in group:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in group:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()


def _signal_group(proc: "subprocess.Popen[bytes]", sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def remove_run_dir(work_dir: str, run_dir: str) -> None:
    """Delete this run's folder, and only a ``run-*`` folder directly inside ``work_dir``."""
    if (os.path.dirname(os.path.abspath(run_dir)) != os.path.abspath(work_dir)
            or not os.path.basename(run_dir).startswith("run-") or os.path.islink(run_dir)):
        raise DrillError("refusing to delete %s: not a run folder of %s" % (run_dir, work_dir))
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)


def log_tail(path: str, lines: int = LOG_TAIL) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = [line.strip() for line in f.read()[-8192:].splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(tail[-lines:]) or "(empty log)"


# --------------------------------------------------------------------------
# Checks over mTLS
# --------------------------------------------------------------------------

def etcdctl(s: Settings, p: Mapping[str, Any], run: Runner, dial_timeout: str = "2s",
            command_timeout: str = "10s") -> Etcdctl:
    c = p["pki"]
    return Etcdctl(run=run, etcdctl="%s/etcdctl" % s.bin_dir, cacert=c["ca.crt"], cert=c["client.crt"],
                   key=c["client.key"], dial_timeout=dial_timeout, command_timeout=command_timeout)


def wait_healthy(ctl: Etcdctl, p: Mapping[str, Any], procs: Sequence["subprocess.Popen[bytes]"], timeout: float,
                 poll: float = POLL_SECONDS) -> List[str]:
    """Poll every member's ``endpoint health`` until all answer healthy; problems when they do not."""
    deadline = time.monotonic() + timeout
    waiting = {m["name"]: "no answer yet" for m in p["members"]}
    while True:
        for m, proc in zip(p["members"], procs):
            if proc.poll() is not None:
                return ["%s: etcd exited with rc %s while starting: %s"
                        % (m["name"], proc.returncode, log_tail(m["log"]))]
        for m in p["members"]:
            if m["name"] not in waiting:
                continue
            rc, out, err = ctl.endpoint_health(m["client_url"])
            checks = parse_endpoint_health(out)
            if checks and checks[0].health:
                del waiting[m["name"]]
            else:
                waiting[m["name"]] = (checks[0].error if checks and checks[0].error else command_error(rc, out, err))
        if not waiting:
            return []
        if time.monotonic() >= deadline:
            return ["%s: not healthy within %d s (endpoint health: %s); log: %s"
                    % (m["name"], timeout, waiting[m["name"]], log_tail(m["log"]))
                    for m in p["members"] if m["name"] in waiting]
        time.sleep(poll)


def _count(out: str) -> Optional[int]:
    """``count`` of ``get -w json`` (omitted by etcd when 0); None when no answer was printed."""
    for doc in iter_json_docs(out):
        if isinstance(doc, dict) and "header" in doc:
            return int(doc.get("count") or 0)
    return None


def _hashkv(out: str) -> Optional[int]:
    for doc in iter_json_docs(out):
        for entry in doc if isinstance(doc, list) else [doc]:
            if isinstance(entry, dict) and isinstance(entry.get("HashKV"), dict):
                return int(entry["HashKV"].get("hash") or 0)
    return None


def read_member(ctl: Etcdctl, url: str, present: Sequence[str]) -> Dict[str, Any]:
    """What one member holds: revision, live keys (serializable, its own answer), hashkv, the keys asked for."""
    reading: Dict[str, Any] = {"revision": None, "keys": None, "hash": None, "missing": [], "errors": [],
                               "leader": False}
    rc, out, err = ctl.endpoint_status(url)
    statuses = parse_endpoint_status(out)
    if statuses:
        reading.update(revision=statuses[0].revision, leader=statuses[0].is_leader)
    else:
        reading["errors"].append("endpoint status: %s" % command_error(rc, out, err))
    rc, out, err = ctl([url], "get", "", "--prefix", "--keys-only", "--limit=1", "--consistency=s", "-w", "json")
    reading["keys"] = _count(out)
    if reading["keys"] is None:
        reading["errors"].append("key count: %s" % command_error(rc, out, err))
    rc, out, err = ctl([url], "endpoint", "hashkv", "-w", "json")
    reading["hash"] = _hashkv(out)
    if reading["hash"] is None:
        reading["errors"].append("endpoint hashkv: %s" % command_error(rc, out, err))
    for key in present:
        rc, out, err = ctl([url], "get", key, "--keys-only", "--consistency=s", "-w", "json")
        count = _count(out)
        if count is None:
            reading["errors"].append("get %s: %s" % (key, command_error(rc, out, err)))
        elif count != 1:
            reading["missing"].append(key)
    return reading


def check_readings(expected_revision: int, expected_keys: int, readings: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """Problems, each naming the member, what was checked and what was seen."""
    problems = []
    for name, r in readings.items():
        problems += ["%s: %s" % (name, e) for e in r.get("errors", [])]
        if r.get("revision") is not None and r["revision"] != expected_revision:
            problems.append("%s: revision is %d, the snapshot's is %d" % (name, r["revision"], expected_revision))
        if r.get("keys") is not None and r["keys"] != expected_keys:
            problems.append("%s: holds %d live keys, expected_keys is %d" % (name, r["keys"], expected_keys))
        problems += ["%s: key %s is missing (expected_present)" % (name, k) for k in r.get("missing", [])]
    hashes = {r["hash"] for r in readings.values() if r.get("hash") is not None}
    if len(hashes) > 1:
        problems.append("members disagree on endpoint hashkv: %s"
                        % ", ".join("%s=%s" % (n, r.get("hash")) for n, r in readings.items()))
    return problems


def snapshot_problems(s: Settings) -> Tuple[List[str], List[str]]:
    """(why the file must not be restored, what it holds that the inputs do not say).

    The first: missing, not the pinned SHA-256, not readable offline. The second (revision and
    live keys read offline against expected_revision and expected_keys) fails the drill too, but
    the drill still runs, so the report shows what the restored members hold as well.
    """
    if not os.path.isfile(s.snapshot):
        return ["snapshot %s: no such file" % s.snapshot], []
    sha256, _trailer = file_digests(s.snapshot)
    if sha256 != s.sha256.lower():
        return ["snapshot %s: SHA-256 is %s, not the pinned %s" % (s.snapshot, sha256, s.sha256)], []
    try:
        held = read_snapshot(s.snapshot)
    except SnapshotError as e:
        return ["snapshot %s: not readable offline (%s)" % (s.snapshot, e)], []
    differ = []
    if held.revision != s.expected_revision:
        differ.append("snapshot file: revision read offline is %d, expected_revision is %d"
                      % (held.revision, s.expected_revision))
    if held.live_keys != s.expected_keys:
        differ.append("snapshot file: %d live keys read offline, expected_keys is %d"
                      % (held.live_keys, s.expected_keys))
    return [], differ


# --------------------------------------------------------------------------
# State, report, metrics
# --------------------------------------------------------------------------

def load_state(path: str) -> Dict[str, Any]:
    """{failures, last_success, last_rto, last_rpo}; a missing or damaged file starts over."""
    state: Dict[str, Any] = {"failures": 0, "last_success": 0.0, "last_rto": 0.0, "last_rpo": 0.0}
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return state
    for key, default in list(state.items()):
        try:
            state[key] = type(default)(raw.get(key, default))
        except (TypeError, ValueError, AttributeError):
            pass
    return state


def next_state(state: Mapping[str, Any], report: Mapping[str, Any], finished: float) -> Dict[str, Any]:
    new = dict(state)
    if report["ok"]:
        new.update(last_success=finished, last_rto=report["rto_seconds"] or 0.0,
                   last_rpo=report["rpo_seconds"] if report["rpo_seconds"] is not None else 0.0)
    else:
        new["failures"] = int(state.get("failures", 0)) + 1
    return new


def render_metrics(cluster: str, state: Mapping[str, Any], ok: bool, finished: float,
                   max_age: int = DEFAULT_MAX_AGE) -> str:
    values = {
        "etcd_restore_drill_last_run_timestamp_seconds": finished,
        "etcd_restore_drill_last_success_timestamp_seconds": state["last_success"],
        "etcd_restore_drill_success": 1 if ok else 0,
        "etcd_restore_drill_rto_seconds": state["last_rto"],
        "etcd_restore_drill_rpo_seconds": state["last_rpo"],
        "etcd_restore_drill_failures_total": state["failures"],
        # Published, not written into the rule: each cluster's drills may keep their own pace.
        "etcd_restore_drill_max_age_seconds": max_age,
    }
    # etcd_cluster, as the alert rules and the dashboard group by: one drill host may drill several clusters.
    label = '{etcd_cluster="%s"}' % cluster.replace("\\", "\\\\").replace('"', '\\"')
    lines = []
    for name, kind, text in METRICS_HELP:
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind),
                  "%s%s %s" % (name, label, metric_value(values[name]))]
    return "\n".join(lines) + "\n"


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else "%.1f s" % value


def format_table(report: Mapping[str, Any]) -> str:
    """The report for a terminal: one row per scratch member, then the figures and the problems."""
    rows = [["MEMBER", "REVISION", "KEYS", "HASHKV", "MISSING"]]
    for name, r in sorted((report.get("readings") or {}).items()):
        rows.append([name] + ["-" if r.get(k) is None else str(r[k]) for k in ("revision", "keys", "hash")]
                    + [", ".join(r.get("missing") or []) or "-"])
    lines = ["restore drill of %s (scratch cluster %s-drill): %s"
             % (report["cluster"], report["cluster"], "OK" if report["ok"] else "FAILED"),
             "snapshot: %s (SHA-256 %s), taken %s"
             % (report["snapshot"] or "-", report["sha256"][:16] or "-", report["taken"] or "?"),
             "expected: revision %d, %d live keys, %d members"
             % (report["revision"], report["keys"], report["members"]), ""]
    if len(rows) > 1:
        lines += table_lines(rows) + [""]
    lines += ["restore %s + start %s = RTO %s (copying the snapshot not included); RPO %s"
              % (_seconds(report["restore_seconds"]), _seconds(report["start_seconds"]),
                 _seconds(report["rto_seconds"]), _seconds(report["rpo_seconds"])),
              "problems: " + ("none" if not report["problems"] else "")]
    lines += ["  - %s" % p for p in report["problems"]]
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------
# The drill
# --------------------------------------------------------------------------

def run_command(argv: Sequence[str], environ_update: Optional[Mapping[str, str]] = None) -> Tuple[int, str, str]:
    """The runner used without Ansible: no shell, etcdctl's flag variables removed from the environment."""
    env = {k: v for k, v in os.environ.items() if k not in FLAG_ENV}
    env.update(environ_update or {})
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    return done.returncode, done.stdout, done.stderr


def check_plan(params: Mapping[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
    """What a drill would do (check mode): nothing is made, started or written."""
    s = Settings.from_params(params)
    return {"changed": False, "plan": plan(s, utc_stamp(now if now is not None else time.time())),
            "problems": s.problems()}


def drill(params: Mapping[str, Any], run: Runner = run_command, hook: Optional[Hook] = None) -> Dict[str, Any]:
    """One drill; returns the report (with ``table``), already written to the report file and metrics.

    ``hook(context)`` is called while the scratch cluster runs, after the checks, with the plan,
    the processes and the etcdctl in use (tests look at the listeners through it).
    """
    s = Settings.from_params(params)
    started = time.time()
    p = plan(s, utc_stamp(started))
    problems = s.problems()
    try:
        taken = parse_taken(s.taken, s.snapshot)
    except DrillError as e:
        taken, problems = None, problems + [str(e)]
    timing: Dict[str, Optional[float]] = {"restore_seconds": None, "start_seconds": None}
    readings: Dict[str, Dict[str, Any]] = {}
    if not problems:
        problems, differ = snapshot_problems(s)
    if not problems:
        try:
            problems = differ + _scratch_cluster(s, p, run, timing, readings, hook)
        except (DrillError, OSError, pki.PkiError, subprocess.SubprocessError) as e:
            problems = differ + ["drill stopped: %s" % e]
    return _finish(s, started, time.time(), taken, problems, timing, readings)


def _finish(s: Settings, started: float, finished: float, taken: Optional[float], problems: List[str],
            timing: Optional[Mapping[str, Optional[float]]] = None,
            readings: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The report (with ``table``), written with the state and metrics: one builder for every outcome,
    so a scheduled run that fails before its drill is counted and alerted on like a failed drill."""
    restore = (timing or {}).get("restore_seconds")
    start = (timing or {}).get("start_seconds")
    rto = restore + start if restore is not None and start is not None else None
    report = {
        "ok": not problems, "cluster": s.cluster, "snapshot": os.path.basename(s.snapshot), "sha256": s.sha256,
        "taken": iso(taken), "revision": s.expected_revision, "keys": s.expected_keys, "members": s.members,
        "restore_seconds": restore, "start_seconds": start,
        "rto_seconds": round(rto, 3) if rto is not None else None,
        "rpo_seconds": round(started - taken, 3) if taken is not None else None,
        "problems": problems, "started": iso(started), "finished": iso(finished), "readings": readings or {},
    }
    _record(s, report, finished)
    return dict(report, table=format_table(report))


def _record(s: Settings, report: Mapping[str, Any], finished: float) -> None:
    """Report file, state file and (where node_exporter's folder exists) metrics, each written atomically."""
    os.makedirs(s.work_dir, mode=0o755, exist_ok=True)
    if not (s.report_file and s.state_file):
        raise ValueError("report_file and state_file must be set")
    write_atomic(s.report_file, json.dumps(report, indent=1, sort_keys=True) + "\n", 0o644)
    state = next_state(load_state(s.state_file), report, finished)
    write_atomic(s.state_file, json.dumps(state, indent=1, sort_keys=True) + "\n", 0o600)
    metrics = metrics_path(s.textfile_dir)
    if metrics:
        write_atomic(metrics, render_metrics(s.cluster, state, bool(report["ok"]), finished, s.max_age), 0o644)


def _scratch_cluster(s: Settings, p: Dict[str, Any], run: Runner, timing: Dict[str, Optional[float]],
                     readings: Dict[str, Dict[str, Any]], hook: Optional[Hook]) -> List[str]:
    """Make, start, check and always tear down the scratch cluster; its problems."""
    ids = owner_ids(s.owner)
    busy = ports_in_use(p)
    if busy:
        return ["127.0.0.1 port(s) %s in use: another drill is running, or a killed drill's scratch members "
                "still run (look for etcd processes with %s/run-* folders), or set base_port"
                % (", ".join(map(str, busy)), s.work_dir)]
    os.makedirs(s.work_dir, mode=0o755, exist_ok=True)
    os.mkdir(p["run_dir"], 0o700)
    procs: List["subprocess.Popen[bytes]"] = []
    try:
        os.chown(p["run_dir"], *ids)
        make_pki(p, ids)
        begin = time.monotonic()
        for m in p["members"]:
            member = {"name": m["name"], "data_dir": m["data_dir"], "peer_url": m["peer_url"]}
            argv = restore_argv(s.version, s.bin_dir, s.snapshot, member, p["initial_cluster"], p["token"], 0)
            rc, out, err = run(argv, environ_update={"ETCDCTL_API": "3"})
            if rc != 0:
                lines = [line for line in (err or out or "").splitlines() if line.strip()]
                return ["%s: %s snapshot restore failed (rc %d): %s"
                        % (m["name"], p["tool"], rc, lines[-1] if lines else "(no output)")]
            chown_tree(m["data_dir"], ids)
        timing["restore_seconds"] = round(time.monotonic() - begin, 3)
        quota = quota_for(os.path.getsize(s.snapshot))
        begin = time.monotonic()
        for m in p["members"]:
            procs.append(start_member(member_argv(s, p, m, quota), m["log"], p["run_dir"], ids))
        ctl = etcdctl(s, p, run, dial_timeout="1s", command_timeout="2s")
        problems = wait_healthy(ctl, p, procs, s.timeout)
        if problems:
            return problems
        timing["start_seconds"] = round(time.monotonic() - begin, 3)
        ctl = etcdctl(s, p, run)
        for m in p["members"]:
            readings[m["name"]] = read_member(ctl, m["client_url"], s.expected_present)
        problems = check_readings(s.expected_revision, s.expected_keys, readings)
        if hook is not None:
            hook({"plan": p, "procs": procs, "etcdctl": ctl, "settings": s})
        return problems
    finally:
        stop_members(procs, [bool(readings.get(m["name"], {}).get("leader")) for m in p["members"]])
        remove_run_dir(s.work_dir, p["run_dir"])


# --------------------------------------------------------------------------
# Scheduled drills: the snapshot fetched from the backup job's remote
# --------------------------------------------------------------------------

def load_config(path: str) -> Dict[str, Any]:
    """A scheduled drill's config (JSON); ValueError or OSError naming what is wrong."""
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError("%s does not hold a JSON object" % path)
    missing = [key for key in SCHEDULED_REQUIRED if not config.get(key)]
    if missing:
        raise ValueError("%s lacks %s" % (path, ", ".join(missing)))
    try:
        _settings(config, {})
    except (TypeError, ValueError) as e:
        raise ValueError("%s: %s" % (path, e))
    return config


def _settings(config: Mapping[str, Any], known: Mapping[str, Any]) -> Settings:
    """The drill's settings before the snapshot is known: its fields empty, or what was learnt so far."""
    unknown = {"snapshot": "", "sha256": "", "expected_revision": 0, "expected_keys": 0, "taken": None}
    return Settings.from_params(dict(config, **dict(unknown, **known)))


def _rclone(run: Runner, argv: List[str]) -> Tuple[int, str, str]:
    try:
        rc, out, err = run(argv + RCLONE_FLAGS)
    except OSError as e:  # no rclone on this host: a failed step, as a shell would say (127)
        return 127, "", "%s: %s" % (argv[0], e.strerror or e)
    return rc, out or "", err or ""


def scheduled(config: Mapping[str, Any], run: Runner = run_command, now: Optional[float] = None) -> Dict[str, Any]:
    """The timer's drill: the newest verified snapshot of ``config["cluster"]`` under ``config["remote"]``.

    config: cluster, remote (the rclone folder the backup job ships this cluster's snapshots
    to), rclone_config, version, bin_dir, members, base_port, work_dir, expected_present,
    timeout, owner, textfile_dir (optional: rclone, the binary; state_file, report_file).
    The snapshot's revision and live keys are read from the file itself (offline), its SHA-256
    from the ``.sha256`` the backup job wrote beside it. ``now`` is the clock of a run that
    fails before its drill (tests). Returns the report with ``table``, like ``drill``.
    """
    started = time.time() if now is None else now
    known: Dict[str, Any] = {}
    base = _settings(config, known)
    remote = str(config["remote"]).rstrip("/")
    rclone = [str(config.get("rclone") or "rclone"), "--config", str(config["rclone_config"])]
    incoming = os.path.join(base.work_dir, "incoming")
    copies: List[str] = []
    problem = "; ".join(base.problems())
    try:
        if not problem:
            try:
                problem = _fetch_latest(base, remote, rclone, incoming, run, known, copies)
            except OSError as e:
                problem = "cannot fetch the snapshot from %s into %s: %s" % (remote, incoming, e)
        if problem:
            # Recorded like a failed drill: the failure counter, the alert and the report see it.
            s = _settings(config, known)
            taken = parse_taken(None, s.snapshot) if s.snapshot else None
            return _finish(s, started, time.time() if now is None else now, taken, [problem])
        # taken None: drill reads it from the name, the time the backup job took the snapshot.
        return drill(dict(config, snapshot=copies[0], sha256=known["sha256"], taken=None,
                          expected_revision=known["expected_revision"], expected_keys=known["expected_keys"]), run)
    finally:
        # Only the copies this run made; nothing else under work_dir is deleted here.
        for path in copies:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def _fetch_latest(base: Settings, remote: str, rclone: List[str], incoming: str, run: Runner,
                  known: Dict[str, Any], copies: List[str]) -> str:
    """Copy the newest verified snapshot and its .sha256 into ``incoming``; the problem, or "".

    Fills ``known`` (snapshot, sha256, expected_revision, expected_keys) as it learns them and
    ``copies`` with every path it copies to (the .db first), so the caller reports and deletes them.
    """
    rc, out, err = _rclone(run, rclone + ["lsf", "--files-only", remote])
    if rc != 0:
        return "cannot list %s: rclone lsf failed (rc %d): %s" % (remote, rc, last_line(err or out))
    # parse_snapshot_name's pattern admits no "/": a listed name cannot lead out of incoming/.
    name = latest_verified(out.splitlines(), base.cluster)
    if name is None:
        return "%s holds no verified snapshot of %s (a .db with its .sha256)" % (remote, base.cluster)
    known["snapshot"] = name
    os.makedirs(base.work_dir, mode=0o755, exist_ok=True)
    os.makedirs(incoming, mode=0o700, exist_ok=True)
    os.chmod(incoming, 0o700)  # a snapshot holds every secret of the cluster
    for f in (name, name + ".sha256"):
        copies.append(os.path.join(incoming, f))
        rc, out, err = _rclone(run, rclone + ["copyto", "%s/%s" % (remote, f), copies[-1]])
        if rc != 0:
            return "cannot copy %s/%s: rclone copyto failed (rc %d): %s" % (remote, f, rc, last_line(err or out))
    with open(copies[1], encoding="utf-8", errors="replace") as fh:
        recorded = (fh.read().split() or [""])[0].lower()
    if not SHA256_RE.match(recorded):
        return ("%s/%s.sha256 does not hold a SHA-256: the backup job writes one beside every snapshot it verified"
                % (remote, name))
    known["sha256"] = recorded
    try:
        held = read_snapshot(copies[0])
    except SnapshotError as e:
        # A damaged copy is named by its SHA-256 first, as drill() would.
        whole, _trailer = file_digests(copies[0])
        if whole != recorded:
            return "snapshot %s: SHA-256 is %s, not the pinned %s" % (name, whole, recorded)
        return "snapshot %s: not readable offline (%s)" % (name, e)
    known.update(expected_revision=held.revision, expected_keys=held.live_keys)
    return ""
