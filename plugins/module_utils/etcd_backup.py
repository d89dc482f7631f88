# -*- coding: utf-8 -*-
"""Take, verify, keep and ship one etcd snapshot.

The backup job behind ``etcd-backup.service`` (roles/etcd_backup). It runs on
every member; only the member that leads at that moment takes the snapshot,
the others say so and exit 0. A run:

1. ``snapshot save`` from the local member into ``<dir>/.incoming/``;
2. verify: SHA-256 trailer, bbolt check, revision and key count through
   ``etcdutl snapshot status`` (3.5+) or ``etcdctl snapshot status`` (3.4),
   size above a floor. A bad file moves to ``<dir>/failed/``, never deleted;
3. atomic rename to ``etcd-<cluster>-<UTC time>-r<revision>.db`` with a
   ``.sha256`` file beside it;
4. local retention (last N plus the newest of each of the last M days; the
   newest verified snapshot is never pruned);
5. optional rclone copy to any remote, checked by size, with its own retention;
6. Prometheus textfile metrics, also written when a step fails.

Runs on managed hosts (copied beside etcd_status.py): stdlib only.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_status

Runner = Callable[[Sequence[str]], Tuple[int, str, str]]

STAGES = ("status", "snapshot", "verify", "retention", "upload", "state")
NAME_RE = re.compile(r"^etcd-(?P<cluster>[A-Za-z0-9_.-]+?)-(?P<ts>\d{8}T\d{6}Z)-r(?P<rev>\d+)\.db$")
TRAILER = 32  # etcd appends sha256(db) to every snapshot it streams
EXIT_OK, EXIT_FAILED, EXIT_BUSY, EXIT_CONFIG = 0, 1, 75, 78


class BackupError(Exception):
    """A step failed; ``stage`` names it for the metrics."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


# --------------------------------------------------------------------------
# Names and retention
# --------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Snapshot:
    taken: dt.datetime
    revision: int
    name: str


def snapshot_name(cluster: str, taken: dt.datetime, revision: int) -> str:
    return f"etcd-{cluster}-{taken.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-r{revision}.db"


def parse_snapshot_name(name: str, cluster: Optional[str] = None) -> Optional[Snapshot]:
    """A snapshot this job made (by name), or None for any other file."""
    m = NAME_RE.match(name)
    if not m or (cluster is not None and m.group("cluster") != cluster):
        return None
    taken = dt.datetime.strptime(m.group("ts"), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    return Snapshot(taken=taken, revision=int(m.group("rev")), name=name)


def retention_plan(names: Sequence[str], cluster: str, keep_last: int, keep_daily: int,
                   now: dt.datetime) -> Tuple[List[str], List[str]]:
    """(keep, prune) among this cluster's snapshot names; other names are ignored.

    Keeps the ``keep_last`` newest, plus the newest of each of the last
    ``keep_daily`` UTC days (today included). The newest is always kept,
    whatever the settings say.
    """
    snaps = sorted((s for s in (parse_snapshot_name(n, cluster) for n in names) if s), reverse=True)
    keep = {s.name for s in snaps[:max(keep_last, 1)]}
    today = now.astimezone(dt.timezone.utc).date()
    first_day = today - dt.timedelta(days=max(keep_daily, 0) - 1)
    seen_days = set()
    for s in snaps:
        day = s.taken.date()
        if keep_daily > 0 and first_day <= day <= today and day not in seen_days:
            seen_days.add(day)
            keep.add(s.name)
    ordered = [s.name for s in snaps]
    return [n for n in ordered if n in keep], [n for n in ordered if n not in keep]


def scheduled_wait(trigger_usec: Optional[str], delay_seconds: int, now: float) -> float:
    """Seconds to wait before a timer-started run checks who leads.

    Every member's timer elapses at the same scheduled time (no per-host random delay);
    systemd passes it as $TRIGGER_TIMER_REALTIME_USEC (systemd 250+). Each member then
    waits the same per-cluster offset, so all of them ask "who leads?" at one moment and
    exactly one takes the snapshot. Runs started by hand (no variable) start at once.
    """
    if not trigger_usec:
        return 0.0
    try:
        target = int(trigger_usec) / 1e6 + max(delay_seconds, 0)
    except ValueError:
        return 0.0
    return max(0.0, min(target - now, float(max(delay_seconds, 0))))


def calendar_interval(analyze_output: str) -> int:
    """Longest gap, in seconds, between the elapse times that
    ``systemd-analyze calendar --iterations=N`` printed (0 if fewer than two).
    Irregular schedules count by their longest gap, so staleness alerts stay quiet."""
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+):\s+\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)",
                        analyze_output)
    times = [dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in stamps]
    gaps = [int((b - a).total_seconds()) for a, b in zip(times, times[1:])]
    return max(gaps, default=0)


# --------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------

def file_digests(path: str, chunk: int = 1 << 20) -> Tuple[str, bool]:
    """(sha256 of the whole file, whether etcd's SHA-256 trailer matches the rest).

    ``snapshot save`` streams the bbolt file followed by sha256(db); a file is
    only trusted when that trailer is present and right (etcd's restore does
    the same check: size % 512 == 32).
    """
    size = os.path.getsize(path)
    if size < TRAILER or size % 512 != TRAILER:
        whole = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                whole.update(block)
        return whole.hexdigest(), False
    # One hash over the body; the whole file's is a copy of it plus the trailer (half the CPU
    # of hashing both: a 1 GiB snapshot is read on the critical path of a restore).
    body = hashlib.sha256()
    remaining = size - TRAILER
    with open(path, "rb") as f:
        while remaining > 0:
            block = f.read(min(chunk, remaining))
            if not block:
                break
            body.update(block)
            remaining -= len(block)
        trailer = f.read(TRAILER)
    whole = body.copy()
    whole.update(trailer)
    return whole.hexdigest(), body.digest() == trailer


@dataclass
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int
    total_size: int


def parse_snapshot_status(stdout: str) -> SnapshotStatus:
    """``etcdutl|etcdctl snapshot status -w json``: {"hash","revision","totalKey","totalSize"}."""
    for doc in etcd_status.iter_json_docs(stdout):
        if isinstance(doc, dict) and "revision" in doc:
            return SnapshotStatus(hash=int(doc.get("hash") or 0), revision=int(doc.get("revision") or 0),
                                  total_keys=int(doc.get("totalKey") or 0),
                                  total_size=int(doc.get("totalSize") or 0))
    raise BackupError("verify", "no snapshot status JSON in the tool's output")


def verify_problems(size: int, trailer_ok: bool, status: SnapshotStatus, min_bytes: int,
                    min_revision: int) -> List[str]:
    """Why a snapshot must not be trusted; empty means verified."""
    problems = []
    if not trailer_ok:
        problems.append("SHA-256 trailer missing or wrong (truncated or not written by snapshot save)")
    if size < min_bytes:
        problems.append(f"size {size} B is below the floor of {min_bytes} B")
    if status.total_keys <= 0:
        problems.append("snapshot holds no keys")
    # A cluster that never saw a write is at revision 1 and snapshots as revision 0.
    if status.revision < min_revision and not (min_revision <= 1 and status.revision == 0):
        problems.append(f"revision {status.revision} is older than the cluster's {min_revision} "
                        "seen just before the snapshot")
    return problems


# --------------------------------------------------------------------------
# Metrics and state
# --------------------------------------------------------------------------

@dataclass
class State:
    """What the metrics report; kept in a JSON file between runs."""

    first_run_timestamp: float = 0.0
    last_run_timestamp: float = 0.0
    last_run_success: int = 1
    last_success_timestamp: float = 0.0
    last_size_bytes: int = 0
    last_duration_seconds: float = 0.0
    last_revision: int = 0
    upload_last_success_timestamp: float = 0.0
    local_snapshots: int = 0
    failures: Dict[str, int] = field(default_factory=lambda: {s: 0 for s in STAGES})

    @classmethod
    def load(cls, path: str) -> "State":
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError):
            return cls()
        state = cls()
        for key, value in raw.items():
            if key == "failures" and isinstance(value, dict):
                state.failures.update({k: int(v) for k, v in value.items() if k in STAGES})
            elif hasattr(state, key):
                try:
                    setattr(state, key, type(getattr(state, key))(value))
                except (TypeError, ValueError):
                    pass  # a damaged field starts over; the others are kept
        return state

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


METRICS_HELP = (
    ("etcd_backup_first_run_timestamp_seconds", "gauge", "When the backup job first ran on this member."),
    ("etcd_backup_last_run_timestamp_seconds", "gauge", "When the backup job last ran on this member."),
    ("etcd_backup_last_run_success", "gauge",
     "1 if the last run succeeded or was skipped because another member leads, 0 if it failed."),
    ("etcd_backup_last_success_timestamp_seconds", "gauge",
     "When this member last took a verified snapshot (0: never)."),
    ("etcd_backup_last_size_bytes", "gauge", "Size of the last verified snapshot."),
    ("etcd_backup_last_duration_seconds", "gauge", "Save plus verify time of the last verified snapshot."),
    ("etcd_backup_last_revision", "gauge", "etcd revision held by the last verified snapshot."),
    ("etcd_backup_upload_last_success_timestamp_seconds", "gauge",
     "When a snapshot last reached the off-host remote (0: never or no remote)."),
    ("etcd_backup_local_snapshots", "gauge", "Verified snapshots kept in the local backup folder."),
    ("etcd_backup_interval_seconds", "gauge", "Longest gap between two scheduled runs."),
)


def render_metrics(state: State, interval_seconds: int) -> str:
    values = {
        "etcd_backup_first_run_timestamp_seconds": state.first_run_timestamp,
        "etcd_backup_last_run_timestamp_seconds": state.last_run_timestamp,
        "etcd_backup_last_run_success": state.last_run_success,
        "etcd_backup_last_success_timestamp_seconds": state.last_success_timestamp,
        "etcd_backup_last_size_bytes": state.last_size_bytes,
        "etcd_backup_last_duration_seconds": state.last_duration_seconds,
        "etcd_backup_last_revision": state.last_revision,
        "etcd_backup_upload_last_success_timestamp_seconds": state.upload_last_success_timestamp,
        "etcd_backup_local_snapshots": state.local_snapshots,
        "etcd_backup_interval_seconds": interval_seconds,
    }
    lines = []
    for name, kind, text in METRICS_HELP:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {metric_value(values[name])}"]
    name = "etcd_backup_failures_total"
    lines += [f"# HELP {name} Failed backup runs, by the step that failed.", f"# TYPE {name} counter"]
    lines += [f'{name}{{stage="{s}"}} {state.failures.get(s, 0)}' for s in STAGES]
    return "\n".join(lines) + "\n"


def metric_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Readers (node_exporter, rclone, operators) never see a half-written file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------

@dataclass
class Config:
    cluster: str
    endpoint: str
    cacert: str
    cert: str
    key: str
    directory: str
    state_file: str
    metrics_file: str
    etcdctl: str = "/usr/local/bin/etcdctl"
    etcdutl: str = ""  # empty: 3.4, verify with etcdctl
    keep_last: int = 24
    keep_daily: int = 7
    min_bytes: int = 16384
    timeout_seconds: int = 1800
    interval_seconds: int = 3600
    delay_seconds: int = 0  # the cluster's own offset after each scheduled time
    rclone: str = "/usr/bin/rclone"
    rclone_config: str = ""
    remote: str = ""  # "name:bucket/prefix"; empty: no off-host copy
    remote_keep_last: int = 24
    remote_keep_daily: int = 30
    rclone_timeout_seconds: int = 600

    @classmethod
    def from_file(cls, path: str) -> "Config":
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ValueError(f"unknown settings in {path}: {', '.join(unknown)}")
        defaults = cls.__dataclass_fields__
        for key, value in known.items():
            kind = defaults[key].type
            if kind in ("int", int):
                known[key] = int(value)
            elif kind in ("str", str):
                known[key] = str(value)
        return cls(**known)


@dataclass
class Result:
    rc: int
    action: str  # taken | skipped | failed | busy
    message: str
    snapshot: str = ""
    sha256: str = ""
    revision: int = 0
    size: int = 0
    duration_seconds: float = 0.0
    save_seconds: float = 0.0
    verify_seconds: float = 0.0
    uploaded: bool = False
    pruned_local: List[str] = field(default_factory=list)
    pruned_remote: List[str] = field(default_factory=list)
    stage: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


class Job:
    """One run. ``run`` takes argv and returns (rc, stdout, stderr)."""

    def __init__(self, cfg: Config, run: Runner, now: Callable[[], float] = time.time,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.run_cmd, self.now, self.log = cfg, run, now, log
        self.ctl = etcd_status.Etcdctl(
            run=lambda argv, environ_update=None: run(argv), etcdctl=cfg.etcdctl,
            cacert=cfg.cacert, cert=cfg.cert, key=cfg.key,
            command_timeout=f"{cfg.timeout_seconds}s")

    # -- steps -------------------------------------------------------------
    def leader_check(self) -> Tuple[bool, int, str, int]:
        """(this member leads, revision now, leader's name or id, database size)."""
        rc, out, err = self.ctl.endpoint_status(self.cfg.endpoint)
        statuses = etcd_status.parse_endpoint_status(out) if rc == 0 else []
        if not statuses:
            raise BackupError("status", "cannot read the local member's status: "
                              + etcd_status.command_error(rc, out, err))
        st = statuses[0]
        if st.leader == 0:
            raise BackupError("status", "the cluster has no leader; no consistent snapshot possible")
        leader = etcd_status.id_hex(st.leader)
        rc, out, _err = self.ctl.member_list([self.cfg.endpoint])
        if rc == 0:
            for m in etcd_status.parse_member_list(out).members:
                if m.id == st.leader and m.name:
                    leader = m.name
        return st.is_leader, st.revision, leader, st.db_size

    def save(self, path: str) -> None:
        rc, out, err = self.ctl([self.cfg.endpoint], "snapshot", "save", path)
        if rc != 0:
            raise BackupError("snapshot", "snapshot save failed: " + etcd_status.command_error(rc, out, err))

    def status_of(self, path: str) -> SnapshotStatus:
        tool = [self.cfg.etcdutl] if self.cfg.etcdutl else [self.cfg.etcdctl]
        rc, out, err = self.run_cmd(tool + ["snapshot", "status", path, "-w", "json"])
        if rc != 0:
            raise BackupError("verify", "snapshot status failed (bbolt check or read): "
                              + etcd_status.command_error(rc, out, err))
        return parse_snapshot_status(out)

    def rclone(self, *args: str) -> Tuple[int, str, str]:
        t = self.cfg.rclone_timeout_seconds
        return self.run_cmd([self.cfg.rclone, "--config", self.cfg.rclone_config,
                             "--contimeout", "10s", "--timeout", f"{t}s", "--retries", "2",
                             "--low-level-retries", "3", *args])

    def upload(self, name: str) -> None:
        base = self.cfg.remote.rstrip("/")
        for f in (name, name + ".sha256"):
            rc, out, err = self.rclone("copyto", os.path.join(self.cfg.directory, f), f"{base}/{f}")
            if rc != 0:
                raise BackupError("upload", f"rclone copyto {f} failed: {last_line(err or out)}")
        rc, out, err = self.rclone("lsjson", f"{base}/{name}")
        listed = json.loads(out) if rc == 0 and out.strip() else []
        size = os.path.getsize(os.path.join(self.cfg.directory, name))
        if not listed or int(listed[0].get("Size", -1)) != size:
            raise BackupError("upload", f"{name} on the remote does not have the local size {size} B")

    def prune_remote(self) -> List[str]:
        base = self.cfg.remote.rstrip("/")
        rc, out, err = self.rclone("lsf", "--files-only", base)
        if rc != 0:
            raise BackupError("upload", f"rclone lsf failed: {last_line(err or out)}")
        names = [ln.strip() for ln in out.splitlines() if ln.strip()]
        _keep, prune = retention_plan(names, self.cfg.cluster, self.cfg.remote_keep_last,
                                      self.cfg.remote_keep_daily, _utc(self.now()))
        for name in prune:
            for f in (name, name + ".sha256"):
                if f in names:
                    rc, out, err = self.rclone("deletefile", f"{base}/{f}")
                    if rc != 0:
                        raise BackupError("upload", f"rclone deletefile {f} failed: {last_line(err or out)}")
        return prune

    def prune_local(self) -> Tuple[List[str], int]:
        """(pruned names, verified snapshots kept)."""
        names = os.listdir(self.cfg.directory)
        # Only names with their .sha256 are verified snapshots; others are left alone.
        verified = [n for n in names if n + ".sha256" in names]
        keep, prune = retention_plan(verified, self.cfg.cluster, self.cfg.keep_last,
                                     self.cfg.keep_daily, _utc(self.now()))
        for name in prune:
            os.remove(os.path.join(self.cfg.directory, name))
            os.remove(os.path.join(self.cfg.directory, name + ".sha256"))
        return prune, len(keep)

    # -- the run -----------------------------------------------------------
    def run(self, force: bool = False) -> Result:
        state = State.load(self.cfg.state_file)
        start = self.now()
        state.last_run_timestamp = start
        state.first_run_timestamp = state.first_run_timestamp or start
        self._stage = "status"
        try:
            result = self._run(state, start, force)
        except Exception as e:  # noqa: BLE001 - every failure must reach the metrics
            stage = e.stage if isinstance(e, BackupError) else self._stage
            message = str(e) if isinstance(e, BackupError) else f"{type(e).__name__}: {e}"
            state.failures[stage] = state.failures.get(stage, 0) + 1
            result = Result(rc=EXIT_FAILED, action="failed", stage=stage, message=message)
            state.last_run_success = 0
            if stage in ("upload", "retention") and getattr(self, "_taken", None):
                # The local snapshot is verified and kept; only a later step failed.
                result.snapshot = os.path.join(self.cfg.directory, self._taken[0])
                result.revision = self._taken[1]
        else:
            state.last_run_success = 1
        try:
            self.write_state(state)
        except OSError as e:
            # The run's own record could not be kept (full or read-only disk): still a failure
            # the metrics must show, so they are written even though the state file is not.
            state.failures["state"] = state.failures.get("state", 0) + 1
            state.last_run_success = 0
            result = Result(rc=EXIT_FAILED, action="failed", stage="state",
                            message=f"cannot write the job's state {self.cfg.state_file}: {e}")
            self.write_metrics(state)
        # What the last run did, for playbooks/backup.yml and operators (best effort: a
        # state folder that takes no writes is already counted above).
        try:
            write_atomic(os.path.join(os.path.dirname(self.cfg.state_file), "last-run.json"),
                         json.dumps(dict(result.to_dict(), started=start, finished=self.now()), sort_keys=True)
                         + "\n", 0o644)
        except OSError:
            pass
        return result

    def _run(self, state: State, start: float, force: bool) -> Result:
        cfg = self.cfg
        leads, revision, leader, db_size = self.leader_check()
        if not leads and not force:
            # A former leader still prunes what it took back then.
            self._stage = "retention"
            pruned, state.local_snapshots = self.prune_local()
            return Result(rc=EXIT_OK, action="skipped", pruned_local=pruned,
                          message=f"not the leader ({leader} leads and takes this run's snapshot)")
        self._stage = "snapshot"
        incoming = os.path.join(cfg.directory, ".incoming")
        os.makedirs(incoming, mode=0o700, exist_ok=True)
        # Leftovers of a run that was killed: ours, never verified (we hold the lock).
        for leftover in os.listdir(incoming):
            os.remove(os.path.join(incoming, leftover))
        free = shutil.disk_usage(cfg.directory).free
        if free < db_size + (64 << 20):
            raise BackupError("snapshot", f"{cfg.directory} has {free} B free, the database is {db_size} B: "
                              "free space, lower retention, or move etcd_backup_dir to a bigger disk")
        taken = _utc(start)
        part = os.path.join(incoming, f"etcd-{cfg.cluster}-{taken:%Y%m%dT%H%M%SZ}.db")
        self.save(part)
        saved = self.now()
        self._stage = "verify"
        size = os.path.getsize(part)
        whole, trailer_ok = file_digests(part)
        try:
            status = self.status_of(part)
            problems = verify_problems(size, trailer_ok, status, cfg.min_bytes, revision)
        except BackupError as e:
            problems, status = [str(e)], SnapshotStatus(0, 0, 0, 0)
        if problems:
            failed = self.keep_failed(part)
            raise BackupError("verify", f"snapshot kept in {failed} for inspection, not trusted: "
                              + "; ".join(problems))
        name = snapshot_name(cfg.cluster, taken, status.revision)
        final = os.path.join(cfg.directory, name)
        # Checksum first: a .db in place always has its .sha256 (retention trusts only those).
        write_atomic(final + ".sha256", f"{whole}  {name}\n", 0o600)
        os.replace(part, final)
        fsync_dir(cfg.directory)
        verified = self.now()
        duration = verified - start
        self._taken = (name, status.revision)
        state.last_success_timestamp = self.now()
        state.last_size_bytes, state.last_revision = size, status.revision
        state.last_duration_seconds = round(duration, 3)
        self._stage = "retention"
        pruned, state.local_snapshots = self.prune_local()
        result = Result(rc=EXIT_OK, action="taken", snapshot=final, sha256=whole,
                        revision=status.revision, size=size, duration_seconds=round(duration, 3),
                        save_seconds=round(saved - start, 3), verify_seconds=round(verified - saved, 3),
                        pruned_local=pruned,
                        message=f"verified snapshot {name}: revision {status.revision}, "
                                f"{status.total_keys} keys, {size} B in {duration:.1f} s")
        if cfg.remote:
            self._stage = "upload"
            self.upload(name)
            result.uploaded = True
            state.upload_last_success_timestamp = self.now()
            result.pruned_remote = self.prune_remote()
            result.message += f"; copied to {cfg.remote}"
        return result

    def keep_failed(self, part: str, keep: int = 2) -> str:
        """Move an untrusted snapshot aside for inspection; only the newest ``keep`` stay,
        so a lasting fault cannot fill the disk with full-size copies."""
        failed = os.path.join(self.cfg.directory, "failed")
        os.makedirs(failed, mode=0o700, exist_ok=True)
        os.replace(part, os.path.join(failed, os.path.basename(part)))
        for old in sorted(os.listdir(failed), reverse=True)[keep:]:
            os.remove(os.path.join(failed, old))
        return failed

    def write_state(self, state: State) -> None:
        write_atomic(self.cfg.state_file, json.dumps(state.to_dict(), indent=1, sort_keys=True), 0o600)
        self.write_metrics(state)

    def write_metrics(self, state: State) -> None:
        if self.cfg.metrics_file:
            write_atomic(self.cfg.metrics_file, render_metrics(state, self.cfg.interval_seconds), 0o644)


def run_locked(cfg: Config, run: Runner, force: bool = False, **kw: Any) -> Result:
    """One run at a time per host (timer and on-demand runs can meet)."""
    lock_path = os.path.join(os.path.dirname(cfg.state_file) or ".", "lock")
    with open(lock_path, "a", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return Result(rc=EXIT_BUSY, action="busy", message="another backup run holds the lock")
        return Job(cfg, run, **kw).run(force=force)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).replace(microsecond=0)


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"
