# -*- coding: utf-8 -*-
"""One health report for a running cluster: etcd status, certificates, backups, drills.

:func:`health_report` takes what the health playbook gathered (the etcd_status module's
``status`` dict, each member's certificate dates and backup state.json, each drill host's
state.json and last-report.json) plus the limits, and returns the figures, a list of
"attention" lines (who, what was checked, what was seen, the fix) and a terminal table.

Pure functions of their inputs (``now`` is passed in), so every rule is unit-tested without
a cluster. Runs on the controller through the etcd_health_report filter; stdlib only.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_status import human_bytes, table_lines

__all__ = ["DEFAULT_LIMITS", "ETCD_DEFAULT_QUOTA", "go_duration_ms", "parse_not_after", "human_age", "cert_row",
           "health_report", "format_report"]

DEFAULT_LIMITS: Dict[str, Any] = {
    "db_quota_ratio": 0.8,
    "applied_lag": 1000,
    "cert_days": 30,
    "backup_age_seconds": 7200,
    "drill_age_seconds": 604800,
    "health_took_ms": 1000,
    # Not reported by etcd before 3.6 (dbSizeQuota): the configured etcd_quota_backend_bytes
    # can be passed here; 0 = etcd's own default.
    "db_quota_bytes": 0,
    "remote_expected": False,
}

# etcd's --quota-backend-bytes default (DefaultQuotaBytes, 2 GiB).
ETCD_DEFAULT_QUOTA = 2 * 1024 ** 3

COLUMNS = ("MEMBER", "HEALTH", "TOOK", "LEADER", "VERSION", "DB/QUOTA", "IN USE", "LAG", "CERTS")

_FIX_CERT = "run playbooks/site.yml (renews certificates inside etcd_pki_renew_days)"
# The CA is renewed from its own key, on purpose only (README "Renewing the CA").
_FIX_CA = ("renew the CA from its own key: move ca.crt aside on the controller, then run playbooks/site.yml "
           "--tags pki (README \"Renewing the CA\")")
_FIX_BACKUP = "check etcd-backup.timer / journalctl -u etcd-backup on the members; run playbooks/backup.yml"
_FIX_DRILL = "run playbooks/restore-drill.yml (scheduled runs: etcd-drill.timer, journalctl -u etcd-drill)"
_FIX_ALARM = {
    "NOSPACE": "run playbooks/maintenance.yml -e etcd_maintenance_mode=nospace (compact, defragment each member, disarm)",
    "CORRUPT": "compare etcdctl endpoint hashkv --cluster, replace the member whose data differs, "
               "then etcdctl alarm disarm",
}


# --------------------------------------------------------------------------
# Small parsers
# --------------------------------------------------------------------------

# Go's time.ParseDuration units, in milliseconds. Both micro signs occur: Duration.String()
# prints U+00B5, ParseDuration also takes U+03BC and "us".
_GO_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "\u00b5s": 1e-3, "\u03bcs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_GO_DURATION = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+")


def go_duration_ms(text: Any) -> Optional[float]:
    """A Go duration string ("12.345ms", "1.2s", "850µs", "1m2.5s") in milliseconds; None if empty or not one."""
    s = str(text or "").strip()
    if s in ("0", "+0", "-0"):
        return 0.0  # the one unitless form Go accepts
    if not _GO_DURATION.fullmatch(s):
        return None
    total = 0.0
    for number, unit in _GO_PART.findall(s):
        total += float(number) * _GO_UNITS_MS[unit]
    # Round away float noise (850 * 1e-3) that would otherwise show in JSON output.
    return round(-total if s.startswith("-") else total, 6)


def parse_not_after(value: Any) -> Optional[dt.datetime]:
    """community.crypto's not_after (ASN.1 GeneralizedTime "20271203134500Z") as an aware UTC datetime."""
    s = str(value or "").strip()
    for fmt in ("%Y%m%d%H%M%SZ", "%Y%m%d%H%M%S%z"):
        try:
            when = dt.datetime.strptime(s, fmt)
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
    return _parse_iso(s)  # an ISO date, as from an already converted value


def _parse_iso(value: Any) -> Optional[dt.datetime]:
    # The drill report writes isoformat() with a "Z" (and maybe microseconds); 3.8's fromisoformat wants +00:00.
    try:
        when = dt.datetime.fromisoformat(str(value or "").strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def cert_row(result: Mapping[str, Any], pki_dir: str) -> Dict[str, Any]:
    """One looped community.crypto.x509_certificate_info result (``item`` = certificate name, read with
    failed_when: false) as the report's {name, path, not_after, error}."""
    name = str(result.get("item") or "")
    args = (result.get("invocation") or {}).get("module_args") or {}
    path = str(args.get("path") or "%s/%s.crt" % (str(pki_dir).rstrip("/"), name))
    if result.get("skipped"):
        error = "not read (task skipped)"
    elif result.get("failed"):
        error = str(result.get("msg") or "x509_certificate_info failed")
    elif not result.get("not_after"):
        error = "x509_certificate_info returned no not_after"
    else:
        error = ""
    return {"name": name, "path": path, "not_after": None if error else str(result["not_after"]), "error": error}


def _iso(when: Optional[float]) -> Optional[str]:
    # Same form as the drill report's timestamps.
    if when is None:
        return None
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _iso_dt(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _num(value: Any, default: float = 0.0) -> float:
    # state.json files are written by our own jobs, but a damaged one must not break the report.
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def human_age(seconds: Optional[float]) -> str:
    """42 s, 42 min, 3.1 h, 2.0 d; "-" when unknown."""
    if seconds is None:
        return "-"
    s = max(0.0, float(seconds))  # a clock a little ahead of the controller's is not "negative old"
    if s < 60:
        return "%d s" % s
    if s < 3600:
        return "%d min" % (s // 60)
    if s < 86400:
        return "%.1f h" % (s / 3600)
    return "%.1f d" % (s / 86400)


def _human_ms(ms: Optional[float]) -> str:
    if ms is None:
        return "-"
    if ms >= 1000:
        return "%.2f s" % (ms / 1000)
    return "%.1f ms" % ms


def _limits(limits: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    merged = dict(DEFAULT_LIMITS)
    for key, value in (limits or {}).items():
        if value is not None:  # Jinja passes None for an unset variable: keep the default then
            merged[key] = value
    for key, default in DEFAULT_LIMITS.items():
        if key != "remote_expected":
            # Whole numbers stay ints, so the JSON report says 1000, not 1000.0; 7.5 days stays 7.5.
            value = _num(merged[key], default)
            merged[key] = int(value) if isinstance(default, int) and value.is_integer() else value
    merged["remote_expected"] = str(merged["remote_expected"]).lower() in ("true", "1", "yes", "on")
    return merged


def _label(name: str, host: Optional[str]) -> str:
    """How items name a member: "m1 (etcd-1)", or just "m1" when the inventory uses the same name."""
    if host and host != name:
        return "%s (%s)" % (name, host)
    return name or host or "?"


# --------------------------------------------------------------------------
# Per-member checks
# --------------------------------------------------------------------------

def _certs(label: str, certs: Sequence[Mapping[str, Any]], now: float, cert_days: float,
           attention: List[str]) -> Dict[str, Dict[str, Any]]:
    expiry: Dict[str, Dict[str, Any]] = {}
    for cert in certs or []:
        name = str(cert.get("name") or cert.get("path") or "?")
        path = str(cert.get("path") or "")
        where = "%s (%s)" % (name, path) if path else name
        fix = _FIX_CA if name == "ca" else _FIX_CERT
        error = str(cert.get("error") or "")
        when = parse_not_after(cert.get("not_after")) if not error else None
        if when is None:
            why = error or ("no expiry date" if not cert.get("not_after")
                            else "expiry date %r not understood" % cert.get("not_after"))
            expiry[name] = {"path": path, "not_after": None, "days_left": None, "error": why}
            attention.append("%s: certificate %s could not be read: %s: %s" % (label, where, why, fix))
            continue
        days = round((when.timestamp() - now) / 86400.0, 2)
        expiry[name] = {"path": path, "not_after": _iso_dt(when), "days_left": days, "error": ""}
        if days <= 0:
            attention.append("%s: certificate %s expired on %s: %s" % (label, where, _iso_dt(when), fix))
        elif days <= cert_days:
            attention.append("%s: certificate %s expires in %.1f days (%s; limit %g days): %s"
                             % (label, where, days, _iso_dt(when), cert_days, fix))
    return expiry


def _member_row(m: Mapping[str, Any], info: Mapping[str, Any], leader: Optional[Mapping[str, Any]],
                lim: Mapping[str, Any], now: float, attention: List[str]) -> Dict[str, Any]:
    name = str(m.get("name") or m.get("id_hex") or "")
    host = info.get("host")
    label = _label(name, host)
    reachable = bool(m.get("reachable"))
    took_ms = go_duration_ms(m.get("health_took"))

    quota = int(_num(m.get("db_size_quota"))) or int(lim["db_quota_bytes"]) or ETCD_DEFAULT_QUOTA
    db_size, in_use = int(_num(m.get("db_size"))), int(_num(m.get("db_size_in_use")))
    ratio = round(db_size / quota, 4) if reachable else None
    if ratio is not None and ratio > lim["db_quota_ratio"]:
        # etcd raises NOSPACE on the file size; defrag only helps if much of it is free pages.
        fix = ("defragment: run playbooks/maintenance.yml (one member at a time, the leader last)"
               if in_use / quota <= lim["db_quota_ratio"] else
               "the data itself is this large: delete keys or raise etcd_quota_backend_bytes and run playbooks/site.yml")
        attention.append("%s: db size %s is %.0f%% of the %s quota (limit %.0f%%, in use %s): %s"
                         % (label, human_bytes(db_size), ratio * 100, human_bytes(quota),
                            lim["db_quota_ratio"] * 100, human_bytes(in_use), fix))

    lag: Optional[int] = None
    if reachable and leader is not None:
        # Read a moment apart from the leader's index, so a follower can look "ahead": that is no lag.
        lag = max(0, int(_num(leader.get("raft_index"))) - int(_num(m.get("raft_applied_index"))))
        if lag > lim["applied_lag"]:
            attention.append("%s: applied index is %d entries behind the leader's raft index (limit %d): "
                             "check its disk and load (journalctl -u etcd on %s); it must catch up by itself"
                             % (label, lag, lim["applied_lag"], host or name))

    if took_ms is not None and took_ms > lim["health_took_ms"]:
        attention.append("%s: endpoint health took %s (limit %g ms): check its disk (fsync latency) and network, "
                         "journalctl -u etcd on %s" % (label, _human_ms(took_ms), lim["health_took_ms"], host or name))

    certs = _certs(label, info.get("certs") or [], now, lim["cert_days"], attention)
    return {
        "name": name, "host": host, "healthy": bool(m.get("healthy")), "reachable": reachable,
        "is_leader": bool(m.get("is_leader")), "is_learner": bool(m.get("is_learner")),
        "took_ms": took_ms, "version": str(m.get("version") or ""),
        "db_size": db_size if reachable else None, "db_size_in_use": in_use if reachable else None,
        "db_size_quota": quota, "quota_ratio": ratio, "applied_lag": lag, "cert_expiry": certs,
        "errors": list(m.get("errors") or []),
    }


def _alarm_items(status: Mapping[str, Any], members: Mapping[str, Mapping[str, Any]]
                 ) -> Tuple[List[Dict[str, str]], List[str], List[str]]:
    """(alarms as {member, alarm}, attention items, the status problems they replace)."""
    names = {str(m.get("id_hex")): str(m.get("name") or "") for m in status.get("members") or []}
    alarms, items, replaced = [], [], []
    for a in status.get("alarms") or []:
        mid = str(a.get("member_id_hex") or a.get("member_id") or "")
        who = str(a.get("member") or names.get(mid) or mid or "?")
        kind = str(a.get("alarm") or "?")
        alarms.append({"member": who, "member_id_hex": mid, "alarm": kind})
        host = (members.get(who) or {}).get("host")
        items.append("%s: alarm %s is raised: %s" % (_label(who, host), kind, _FIX_ALARM.get(
            kind, "find the cause in journalctl -u etcd on %s, then etcdctl alarm disarm" % (host or who))))
        # build_cluster_status words each alarm as a problem too; one line per alarm is enough.
        replaced += ["alarm %s raised by member %s" % (kind, w) for w in (who, mid)]
    return alarms, items, replaced


# --------------------------------------------------------------------------
# Backups and drills
# --------------------------------------------------------------------------

def _backup(members: Mapping[str, Mapping[str, Any]], lim: Mapping[str, Any], now: float,
            attention: List[str]) -> Dict[str, Any]:
    last, upload = 0.0, 0.0
    failed_runs: List[str] = []
    for name in sorted(members):
        info = members[name] or {}
        state = info.get("backup")
        if not isinstance(state, Mapping):
            continue
        # Only the leader snapshots, and leadership moves: the cluster's backup is the newest anywhere.
        last = max(last, _num(state.get("last_success_timestamp")))
        upload = max(upload, _num(state.get("upload_last_success_timestamp")))
        if int(_num(state.get("last_run_success"), 1)) == 0:
            failed = ", ".join("%s %d" % (k, int(_num(v))) for k, v in sorted((state.get("failures") or {}).items())
                               if _num(v) > 0)
            failed_runs.append("%s: backup: the last backup run (%s) failed%s: check journalctl -u etcd-backup "
                               "on %s; run playbooks/backup.yml"
                               % (_label(name, info.get("host")), _iso(_num(state.get("last_run_timestamp")) or None) or "?",
                                  "; failures so far: " + failed if failed else "", info.get("host") or name))
    age = now - last if last > 0 else None
    upload_age = now - upload if upload > 0 else None
    if age is None:
        attention.append("backup: no member has taken a verified snapshot: " + _FIX_BACKUP)
    elif age > lim["backup_age_seconds"]:
        attention.append("backup: the newest verified snapshot is %s old (%s; limit %s): %s"
                         % (human_age(age), _iso(last), human_age(lim["backup_age_seconds"]), _FIX_BACKUP))
    attention += failed_runs  # after the cluster-wide verdict, which is what pages
    if lim["remote_expected"]:
        # Without a remote configured the job never uploads: only flagged where one is expected.
        if upload_age is None:
            attention.append("backup: no snapshot has reached the off-host remote (remote_expected): check "
                             "etcd_backup_rclone_remote and journalctl -u etcd-backup; run playbooks/backup.yml")
        elif upload_age > lim["backup_age_seconds"]:
            attention.append("backup: the newest off-host copy is %s old (%s; limit %s): check journalctl -u "
                             "etcd-backup (upload stage); run playbooks/backup.yml"
                             % (human_age(upload_age), _iso(upload), human_age(lim["backup_age_seconds"])))
    return {"last_success": _iso(last) if last > 0 else None, "age_seconds": age,
            "last_upload": _iso(upload) if upload > 0 else None, "upload_age_seconds": upload_age}


def _drill(host: str, entry: Mapping[str, Any], lim: Mapping[str, Any], now: float,
           attention: List[str]) -> Dict[str, Any]:
    state = entry.get("state") if isinstance(entry.get("state"), Mapping) else {}
    report = entry.get("report") if isinstance(entry.get("report"), Mapping) else None
    last = _num(state.get("last_success"))
    if last <= 0 and report is not None and report.get("ok"):
        # A report without its state file (removed by hand): its finish time still proves a success.
        finished = _parse_iso(report.get("finished"))
        last = finished.timestamp() if finished else 0.0
    age = now - last if last > 0 else None
    who = "drill host %s" % host
    if age is None:
        attention.append("%s: no restore drill has succeeded: %s" % (who, _FIX_DRILL))
    elif age > lim["drill_age_seconds"]:
        attention.append("%s: the last successful restore drill was %s ago (%s; limit %s): %s"
                         % (who, human_age(age), _iso(last), human_age(lim["drill_age_seconds"]), _FIX_DRILL))
    last_ok = bool(report.get("ok")) if report is not None else None
    if report is not None and not last_ok:
        problems = report.get("problems") or []
        attention.append("%s: the last restore drill (%s, snapshot %s) failed: %s: fix that, then %s"
                         % (who, report.get("finished") or "?", report.get("snapshot") or "?",
                            problems[0] if problems else "no problem recorded (see /var/lib/etcd-drill/last-report.json)",
                            _FIX_DRILL))
    return {"last_success": _iso(last) if last > 0 else None, "age_seconds": age, "last_ok": last_ok,
            "failures": int(_num(state.get("failures"))), "rto_seconds": _num(state.get("last_rto")) or None,
            "rpo_seconds": _num(state.get("last_rpo")) or None,
            "last_finished": report.get("finished") if report is not None else None}


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------

def health_report(status: Optional[Mapping[str, Any]], members: Optional[Mapping[str, Mapping[str, Any]]],
                  drills: Optional[Mapping[str, Mapping[str, Any]]], limits: Optional[Mapping[str, Any]],
                  now: float) -> Dict[str, Any]:
    """The health report: figures, attention items (ok iff none) and the table. See the module docstring."""
    status = status or {}
    members = members or {}
    drills = drills or {}
    lim = _limits(limits)
    now = float(now)
    attention: List[str] = []

    alarms, alarm_items, replaced = _alarm_items(status, members)
    if not status.get("members"):
        attention.append("cluster: no etcd member answered (no status): check that etcd runs on the members "
                         "(systemctl status etcd, journalctl -u etcd) and that the controller reaches their "
                         "client port; run playbooks/status.yml for details")
    attention += [p for p in status.get("problems") or [] if p not in replaced]
    attention += alarm_items

    reported = list(status.get("members") or [])
    leader = next((m for m in reported if m.get("is_leader") and m.get("reachable")), None)
    seen = {str(m.get("name") or "") for m in reported}
    # Members we have host data for but etcd did not list (or no status at all) still get their certificates checked.
    reported += [{"name": n} for n in sorted(members) if n not in seen]
    rows = [_member_row(m, members.get(str(m.get("name") or "")) or {}, leader, lim, now, attention)
            for m in reported]

    backup = _backup(members, lim, now, attention)
    drill = {str(h): _drill(str(h), drills[h] or {}, lim, now, attention) for h in sorted(drills)}

    result: Dict[str, Any] = {
        "ok": not attention,
        "attention": attention,
        "generated": _iso(now),
        "cluster": {
            "healthy": bool(status.get("healthy")),
            "has_quorum": bool(status.get("has_quorum")),
            "leader": (status.get("leader") or {}).get("name") or None,
            "versions": list(status.get("versions") or []),
            "revision": status.get("revision"),
            "revision_spread": status.get("revision_spread"),
            "alarms": alarms,
        },
        "members": rows,
        "backup": backup,
        "drill": drill,
        "limits": lim,
    }
    result["table"] = format_report(result)
    return result


def _health_cell(row: Mapping[str, Any]) -> str:
    if not row["reachable"]:
        return "UNREACHABLE"
    return "healthy" if row["healthy"] else "UNHEALTHY"


def _certs_cell(expiry: Mapping[str, Mapping[str, Any]]) -> str:
    if not expiry:
        return "-"
    if any(c.get("days_left") is None for c in expiry.values()):
        return "UNREADABLE"
    days = min(float(c["days_left"]) for c in expiry.values())
    return "EXPIRED" if days <= 0 else "%d d" % days


def _table_row(row: Mapping[str, Any]) -> List[str]:
    up = row["reachable"]
    leader = "learner" if row["is_learner"] else ("yes" if row["is_leader"] else "no")
    return [
        row["name"] or "?",
        _health_cell(row),
        _human_ms(row["took_ms"]),
        leader if up else "-",
        row["version"] or "-",
        ("%s / %s (%.0f%%)" % (human_bytes(row["db_size"]), human_bytes(row["db_size_quota"]),
                               row["quota_ratio"] * 100)) if up else "-",
        human_bytes(row["db_size_in_use"]) if up else "-",
        str(row["applied_lag"]) if row["applied_lag"] is not None else "-",
        _certs_cell(row["cert_expiry"]),
    ]


def format_report(report: Mapping[str, Any]) -> str:
    """The report for a terminal: verdict, member table, alarms, backups, drills, attention items."""
    attention = report.get("attention") or []
    lines = ["etcd cluster health: " + ("OK" if not attention else "NEEDS ATTENTION (%d)" % len(attention)), ""]
    lines += table_lines([list(COLUMNS)] + [_table_row(r) for r in report.get("members") or []])
    lines.append("")
    alarms = (report.get("cluster") or {}).get("alarms") or []
    lines.append("alarms:             " + (", ".join("%s on %s" % (a["alarm"], a["member"]) for a in alarms)
                                           or "none"))
    backup = report.get("backup") or {}
    lines.append("last backup:        " + ("%s ago (%s)" % (human_age(backup.get("age_seconds")), backup["last_success"])
                                           if backup.get("last_success") else "never"))
    lines.append("last off-host copy: " + ("%s ago (%s)" % (human_age(backup.get("upload_age_seconds")),
                                                            backup["last_upload"])
                                           if backup.get("last_upload") else "-"))
    drills = report.get("drill") or {}
    if not drills:
        lines.append("restore drills:     no drill hosts")
    for host, d in sorted(drills.items()):
        success = "%s ago" % human_age(d["age_seconds"]) if d.get("last_success") else "never"
        last_run = {True: "ok", False: "FAILED", None: "-"}[d.get("last_ok")]
        lines.append("drill %s: last success %s, last run %s, failures %d, RTO %s, RPO %s"
                     % (host, success, last_run, d.get("failures") or 0,
                        "%.1f s" % d["rto_seconds"] if d.get("rto_seconds") else "-",
                        human_age(d["rpo_seconds"]) if d.get("rpo_seconds") else "-"))
    lines.append("")
    if attention:
        lines.append("attention:")
        lines += ["  - %s" % item for item in attention]
    else:
        lines.append("nothing needs attention")
    return "\n".join(line.rstrip() for line in lines)
