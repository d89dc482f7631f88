# -*- coding: utf-8 -*-
"""Full-cluster restore rules: which snapshot may be restored, and how, per etcd version.

Upstream (etcd website, op-guide/recovery.md; etcd-operations.md section 3 here):
- every member restores from the SAME snapshot, with the same --initial-cluster and a NEW
  --initial-cluster-token, so no member of the old cluster can join the restored one;
- 3.4 restores with `etcdctl snapshot restore`, 3.5+ with `etcdutl snapshot restore`
  (3.6 removed the etcdctl form);
- --bump-revision/--mark-compacted exist from 3.4.27 and 3.5.10 (and in 3.6): Kubernetes
  informers must see every revision they cached as compacted, or they keep stale caches.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_backup import (
    file_digests, fsync_dir, last_line, parse_snapshot_name, write_atomic)
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_versions import at_least, parse_version

# recovery.md: 1'000'000'000 revisions cover a week-old snapshot below 1500 writes/s.
DEFAULT_BUMP = 1_000_000_000
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def restore_tool(version: str) -> Dict[str, Any]:
    """{'binary': 'etcdctl'|'etcdutl', 'bump': whether --bump-revision/--mark-compacted exist}."""
    v = parse_version(version)
    if v.minor_line == "3.4":
        return {"binary": "etcdctl", "bump": v.patch >= 27}
    return {"binary": "etcdutl", "bump": at_least(v, "3.5", 10)}


def restore_token(cluster: str, sha256: str) -> str:
    """The restored cluster's token: new for every snapshot, the same on a re-run of one restore."""
    return "%s-restore-%s" % (cluster, sha256[:16])


def restore_argv(version: str, bin_dir: str, snapshot: str, member: Mapping[str, str], initial_cluster: str,
                 token: str, bump_revision: int) -> List[str]:
    """The restore command for one member (member: name, data_dir, wal_dir ('' = none), peer_url)."""
    tool = restore_tool(version)
    argv = ["%s/%s" % (bin_dir, tool["binary"]), "snapshot", "restore", snapshot,
            "--name", member["name"], "--data-dir", member["data_dir"],
            "--initial-cluster", initial_cluster, "--initial-cluster-token", token,
            "--initial-advertise-peer-urls", member["peer_url"]]
    if member.get("wal_dir"):
        argv += ["--wal-dir", member["wal_dir"]]
    if bump_revision > 0 and tool["bump"]:
        argv += ["--bump-revision", str(bump_revision), "--mark-compacted"]
    return argv


def snapshot_problems(name: str, sha256_file: Optional[str], sha256: str, cluster: str,
                      status: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Why a snapshot must not be restored (empty: it may).

    name: the file name; sha256_file: the content of its .sha256 (None when missing);
    sha256: the file's SHA-256 as computed now; status: `snapshot status -w json` (hash,
    revision, totalKey) when it was read.
    """
    problems = []
    parsed = parse_snapshot_name(name)
    if parsed is None:
        problems.append("%s is not named as the backup job names snapshots (etcd-<cluster>-<time>-r<revision>.db): "
                        "restore only what the backup job took and verified" % name)
    elif parse_snapshot_name(name, cluster) is None:
        problems.append("%s is a snapshot of another cluster, not of %s: name the right file, or set "
                        "etcd_cluster_name if this inventory is that cluster" % (name, cluster))
    if sha256_file is None:
        problems.append("%s has no .sha256 beside it: only snapshots the backup job verified are restored" % name)
    else:
        recorded = (sha256_file.split() or [""])[0].lower()
        if not _SHA256.match(recorded):
            problems.append("%s.sha256 does not hold a SHA-256: take the snapshot again" % name)
        elif recorded != sha256:
            problems.append("%s has SHA-256 %s but its .sha256 says %s: the file changed after the backup job "
                            "verified it; use another snapshot" % (name, sha256, recorded))
    if status is not None and int(status.get("totalKey") or 0) <= 0:
        problems.append("%s holds no keys according to snapshot status: use another snapshot" % name)
    return problems


def copies_problems(sha256: str, copies: Mapping[str, str]) -> List[str]:
    """Every member's copy must have the pinned SHA-256 (host -> SHA-256 seen there)."""
    return ["the copy on %s has SHA-256 %s, not the pinned %s: copy it again (nothing was touched)"
            % (host, seen or "(missing)", sha256) for host, seen in sorted(copies.items()) if seen != sha256]


def aside_path(path: str, stamp: str) -> str:
    """Where a member's old data (or WAL) folder goes: beside it, dated, on the same volume."""
    return "%s.before-restore-%s" % (path.rstrip("/"), stamp)


def plan(hosts: Sequence[str], members: Mapping[str, Mapping[str, str]], snapshot: Mapping[str, Any],
         version: str, bump_revision: int) -> Dict[str, Any]:
    """What a restore will do, for --check and the log: one line per member, in one order."""
    tool = restore_tool(version)
    bump = bump_revision if tool["bump"] else 0
    steps = []
    for host in hosts:
        m = members[host]
        steps.append("%s: stop etcd; move %s/member%s aside (dated, same volume); %s snapshot restore as %s; start "
                     "with the others" % (host, m["data_dir"].rstrip("/"), (" and " + m["wal_dir"]) if m.get("wal_dir") else "",
                                          tool["binary"], m["name"]))
    warnings = []
    if bump_revision > 0 and not tool["bump"]:
        warnings.append("etcd %s cannot bump the revision on restore (needs 3.4.27+ or 3.5.10+): Kubernetes "
                        "watchers may keep stale caches; restart kube-apiserver after the restore" % version)
    return {"snapshot": dict(snapshot), "bump_revision": bump, "tool": tool["binary"], "steps": steps,
            "warnings": warnings}


def confirm_problems(confirm: str, sha256: str) -> List[str]:
    """A restore replaces the whole cluster's data: the operator names the snapshot's SHA-256
    (its first 12 characters at least) on every run, so no run restores by accident."""
    confirm = (confirm or "").strip().lower()
    if len(confirm) >= 12 and sha256.startswith(confirm):
        return []
    told = ("etcd_restore_confirm=%s names another snapshot" % confirm) if confirm else "etcd_restore_confirm is not set"
    return ["%s: a restore replaces the data of every member. Check the plan above, then run again with "
            "-e etcd_restore_confirm=%s (the snapshot's SHA-256, 12 characters or more)" % (told, sha256[:12])]


def latest_verified(names: Sequence[str], cluster: str) -> Optional[str]:
    """The newest snapshot of this cluster that has its .sha256 beside it (a remote listing)."""
    present = set(n.strip().rstrip("/") for n in names)
    dated = [(parsed.taken, n) for n in present
             for parsed in [parse_snapshot_name(n, cluster)] if parsed is not None and n + ".sha256" in present]
    return max(dated)[1] if dated else None


def verify_problems(expected_revision: int, expected_keys: int,
                    readings: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """After the start: every member at the restored revision, one hashkv, the snapshot's keys.

    readings: member name -> {revision (current), keys (count at expected_revision),
    hash (hashkv at expected_revision)}; a member without a reading did not answer.
    """
    problems = []
    for name, r in sorted(readings.items()):
        if not r:
            problems.append("%s did not answer after the start" % name)
            continue
        if int(r.get("revision", 0)) < expected_revision:
            problems.append("%s is at revision %s, below the restored %d" % (name, r.get("revision"), expected_revision))
        if int(r.get("keys", -1)) != expected_keys:
            problems.append("%s holds %s keys at revision %d, the snapshot %d"
                            % (name, r.get("keys"), expected_revision, expected_keys))
    hashes = {str(r.get("hash")) for r in readings.values() if r}
    if len(hashes) > 1:
        problems.append("members disagree on hashkv at revision %d: %s" % (
            expected_revision, ", ".join("%s=%s" % (n, r.get("hash")) for n, r in sorted(readings.items()) if r)))
    return problems


# --------------------------------------------------------------------------
# One member's part, as a transaction that a re-run finishes
# --------------------------------------------------------------------------
# Phases, recorded in <state_dir>/<sha256[:16]>.json before each step acts, so a run killed
# at any point resumes where it stopped:
#   moving   -> old member folder (and WAL folder) renamed aside, dated, on the same volume
#   aside    -> the snapshot restored into a scratch folder beside them (ours: redone freely)
#   placing  -> the scratch output renamed into place
#   restored -> done on this member; verified once the whole cluster was checked
PHASES = ("moving", "aside", "placing", "restored", "verified")


class RestoreError(Exception):
    """A member's restore cannot go on; the message names what was found and the fix."""


def state_path(state_dir: str, sha256: str) -> str:
    return os.path.join(state_dir, "%s.json" % sha256[:16])


def read_state(state_dir: str, sha256: str) -> Dict[str, Any]:
    try:
        with open(state_path(state_dir, sha256), encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise RestoreError("cannot read %s (%s): move it aside and run again"
                           % (state_path(state_dir, sha256), e)) from e
    if state.get("sha256") != sha256 or state.get("phase") not in PHASES:
        raise RestoreError("%s does not belong to this restore: move it aside and run again"
                           % state_path(state_dir, sha256))
    return state


def member_paths(data_dir: str, wal_dir: str, sha256: str, stamp: str) -> Dict[str, str]:
    """Folders one member's restore touches. wal_dir is etcd's --wal-dir ('' = inside member/)."""
    data_dir = data_dir.rstrip("/")
    scratch = os.path.join(data_dir, ".restore-%s" % sha256[:16])
    paths = {"member": os.path.join(data_dir, "member"), "scratch": scratch,
             "scratch_member": os.path.join(scratch, "member"),
             "member_aside": aside_path(os.path.join(data_dir, "member"), stamp)}
    if wal_dir:
        wal_dir = wal_dir.rstrip("/")
        paths.update(wal=wal_dir, wal_aside=aside_path(wal_dir, stamp),
                     scratch_wal=os.path.join(os.path.dirname(wal_dir), ".restore-%s-wal" % sha256[:16]))
    return paths


Runner = Callable[[List[str]], Tuple[int, str, str]]


def restore_member(state_dir: str, sha256: str, stamp: str, data_dir: str, wal_dir: str,
                   restore_command: Callable[[str, str], List[str]], run: Runner,
                   own: Callable[[str], None], check_mode: bool = False) -> Dict[str, Any]:
    """Move this member's old data aside and restore the snapshot in its place, resumably.

    restore_command(data_dir, wal_dir) gives the argv restoring into those (scratch) folders;
    own(path) hands a restored tree to etcd's account. Nothing but our own scratch output is
    ever deleted. Returns {changed, phase, stamp, aside: [...], actions: [...]}.
    """
    state = read_state(state_dir, sha256)
    stamp = state.get("stamp") or stamp
    p = member_paths(data_dir, wal_dir, sha256, stamp)
    actions: List[str] = []
    result = {"changed": False, "stamp": stamp, "phase": state.get("phase", ""),
              "aside": [p["member_aside"]] + ([p["wal_aside"]] if wal_dir else []), "actions": actions}
    if state.get("phase") in ("restored", "verified"):
        return result
    if check_mode:
        actions.append("move %s aside to %s, restore the snapshot, put it in place"
                       % (" and ".join(x for x in (p["member"], p.get("wal")) if x), " and ".join(result["aside"])))
        result["changed"] = True
        return result

    def record(phase: str) -> None:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        state.update(sha256=sha256, stamp=stamp, phase=phase, data_dir=data_dir, wal_dir=wal_dir,
                     aside=result["aside"])
        write_atomic(state_path(state_dir, sha256), json.dumps(state, sort_keys=True) + "\n", 0o600)
        result["phase"] = phase
        result["changed"] = True

    if not state:
        record("moving")
    if state["phase"] == "moving":
        for src, dst in ((p["member"], p["member_aside"]), (p.get("wal"), p.get("wal_aside"))):
            if not src or not os.path.lexists(src):
                continue
            if os.path.lexists(dst):
                raise RestoreError("both %s and %s exist: a folder appeared where the old data was moved from "
                                   "(did etcd start?). Nothing was deleted; look at both, move the unwanted one "
                                   "elsewhere, and run again" % (src, dst))
            os.rename(src, dst)
            fsync_dir(os.path.dirname(src))
            actions.append("moved %s to %s" % (src, dst))
        record("aside")
    while state["phase"] in ("aside", "placing"):
        if state["phase"] == "aside":
            for scratch in (p["scratch"], p.get("scratch_wal")):
                if scratch and os.path.lexists(scratch):
                    shutil.rmtree(scratch)  # a killed earlier attempt's output, made from the snapshot
            rc, out, err = run(restore_command(p["scratch"], p.get("scratch_wal", "")))
            if rc != 0:
                raise RestoreError("snapshot restore failed (rc %d): %s" % (rc, last_line(err or out)))
            for scratch in (p["scratch"], p.get("scratch_wal")):
                if scratch:
                    own(scratch)
            actions.append("restored the snapshot into %s" % p["scratch"])
            record("placing")
        moves = [(p["scratch_member"], p["member"])]
        if wal_dir:
            moves.insert(0, (p["scratch_wal"], p["wal"]))
        if all(not os.path.lexists(src) and not os.path.lexists(dst) for src, dst in moves):
            record("aside")  # the scratch output is gone and nothing is in place: restore again
            continue
        for src, dst in moves:
            if os.path.lexists(src) and os.path.lexists(dst):
                raise RestoreError("both %s and %s exist: nothing was deleted; move %s elsewhere and run again"
                                   % (src, dst, dst))
            if os.path.lexists(src):
                os.rename(src, dst)
                fsync_dir(os.path.dirname(dst))
                actions.append("put %s in place" % dst)
            elif not os.path.lexists(dst):
                raise RestoreError("%s is missing while %s was restored: run again (the restore is redone)" % (dst, src))
        if os.path.isdir(p["scratch"]) and not os.listdir(p["scratch"]):
            os.rmdir(p["scratch"])
        record("restored")
    return result


def mark_verified(state_dir: str, sha256: str) -> bool:
    """Record that the whole cluster was checked after this restore (True when it changed)."""
    state = read_state(state_dir, sha256)
    if state.get("phase") == "verified":
        return False
    if state.get("phase") != "restored":
        raise RestoreError("this member's restore is not finished (phase %r): run the restore again"
                           % state.get("phase", ""))
    state["phase"] = "verified"
    write_atomic(state_path(state_dir, sha256), json.dumps(state, sort_keys=True) + "\n", 0o600)
    return True


HOLD_FILE = "in-progress"
GUARD_DROPIN = "restore-guard.conf"


def guard_dropin(state_dir: str) -> str:
    """While the hold file exists systemd skips etcd: no start on a half-restored member."""
    return ("# Written by the etcd toolkit's restore: etcd stays down while a restore is in progress.\n"
            "[Unit]\nConditionPathExists=!%s\n" % os.path.join(state_dir, HOLD_FILE))


def _write_if_changed(path: str, content: str, mode: int, uid: int = 0, gid: int = 0, dir_mode: int = 0o755) -> bool:
    """Write one small file (atomically, with its owner) unless it already holds content."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), mode=dir_mode, exist_ok=True)
    write_atomic(path, content, mode)
    os.chown(path, uid, gid)
    return True


def write_hold(state_dir: str, sha256: str, dropin_dir: str) -> Dict[str, bool]:
    """Write the hold file and the guard drop-in; which of them changed ({'hold', 'guard'})."""
    return {"hold": _write_if_changed(os.path.join(state_dir, HOLD_FILE), sha256 + "\n", 0o600, dir_mode=0o700),
            "guard": _write_if_changed(os.path.join(dropin_dir, GUARD_DROPIN), guard_dropin(state_dir), 0o644)}


# etcd's start-up corruption check (a member with data) asks each peer for its hash before
# it serves its own peer port, each request bounded by etcd's request timeout (5 s plus two
# election timeouts). Members restored and started together wait out those timeouts on each
# other: the quorum wait took 18.8 s with a 1.2 GiB snapshot, 2.2 s without. Every member holds the same
# verified snapshot and the playbook compares hashkv on every member once a quorum exists,
# so their first start skips the check; the override goes once the cluster is verified.
FIRST_START_CONFIG = "etcd.conf.restore-first-start.yml"
FIRST_START_DROPIN = "restore-first-start.conf"


def first_start_config(config_text: str) -> str:
    """The member's configuration with the initial corruption check off (3.4/3.5 key, 3.6 gate)."""
    lines = ["# Written by the etcd toolkit's restore for the first start after it: as the file",
             "# beside it, without the initial corruption check. Removed once the cluster is verified."]
    for line in config_text.splitlines():
        if line.startswith("experimental-initial-corrupt-check:"):
            line = "experimental-initial-corrupt-check: false"
        elif line.startswith("feature-gates:"):
            line = line.replace("InitialCorruptCheck=true", "InitialCorruptCheck=false")
        lines.append(line)
    return "\n".join(lines) + "\n"


def first_start_dropin(etcd_binary: str, config_path: str) -> str:
    """A systemd drop-in starting etcd on the first-start configuration."""
    return ("# Written by the etcd toolkit's restore; removed once the restored cluster is verified.\n"
            "[Service]\nExecStart=\nExecStart=%s --config-file %s\n" % (etcd_binary, config_path))


def write_first_start(config_file: str, dropin_dir: str, etcd_binary: str) -> bool:
    """Write the first-start configuration and drop-in (owner and mode as config_file's); True if changed."""
    try:
        with open(config_file, encoding="utf-8") as f:
            text = f.read()
        st = os.stat(config_file)
    except FileNotFoundError:
        return False  # not provisioned: etcd has nothing to start with either
    config = os.path.join(os.path.dirname(config_file), FIRST_START_CONFIG)
    copied = _write_if_changed(config, first_start_config(text), st.st_mode & 0o777, st.st_uid, st.st_gid)
    dropin = _write_if_changed(os.path.join(dropin_dir, FIRST_START_DROPIN), first_start_dropin(etcd_binary, config), 0o644)
    return copied or dropin


def remove_first_start(config_file: str, dropin_dir: str) -> bool:
    """Remove the first-start override (the running etcd keeps running); True if anything was removed."""
    removed = False
    for path in (os.path.join(dropin_dir, FIRST_START_DROPIN),
                 os.path.join(os.path.dirname(config_file), FIRST_START_CONFIG)):
        if os.path.lexists(path):
            os.unlink(path)
            removed = True
    return removed


def place_copy(staged: Optional[str], dest: str, sha256: str) -> Dict[str, Any]:
    """Put a staged upload of the pinned snapshot at ``dest`` (root, 0600) with its .sha256.

    Without ``staged``, only reports whether ``dest`` already holds the pinned snapshot (a
    re-run sends nothing). A staged file on dest's file system is renamed, not copied; its
    SHA-256 is read once, and a file that is not the pinned snapshot never reaches ``dest``.
    Returns {'present', 'sha256', 'trailer_ok', 'changed'}; raises ValueError on a mismatch.
    """
    def answer(present: bool, digest: Optional[str], trailer_ok: Optional[bool], changed: bool) -> Dict[str, Any]:
        return {"present": present, "sha256": digest, "trailer_ok": trailer_ok, "changed": changed}

    sidecar = "%s  %s\n" % (sha256, os.path.basename(dest))
    if staged is None:
        if not os.path.isfile(dest):
            return answer(False, None, None, False)
        digest, trailer_ok = file_digests(dest)
        return answer(digest == sha256, digest, trailer_ok, False)
    partial = dest + ".partial"
    if os.stat(staged).st_dev == os.stat(os.path.dirname(dest) or ".").st_dev:
        os.replace(staged, partial)
    else:
        shutil.copyfile(staged, partial)
        os.unlink(staged)
    digest, trailer_ok = file_digests(partial)
    if digest != sha256:
        os.unlink(partial)  # the upload, not an operator's file
        raise ValueError("the copy on this member has SHA-256 %s, not the pinned %s: the transfer was damaged; "
                         "run the restore again" % (digest, sha256))
    if os.geteuid() == 0:
        os.chown(partial, 0, 0)
    os.chmod(partial, 0o600)
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, dest)
    write_atomic(dest + ".sha256", sidecar, 0o600)
    return answer(True, digest, trailer_ok, True)
