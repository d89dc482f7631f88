#!/usr/bin/env python3
"""Helpers for bench/cross_az.sh (standard library only).

    soak     steady write load through each member's HTTPS gRPC gateway, watching the
             leader; writes one JSON summary
    peers    print the peer URLs the cluster advertises (proves the relays are in the path)
    tuning   pull the measure-rtt.yml result out of an ansible.posix.json run
    report   side-by-side table of two soak summaries; exit 1 if the last one saw a
             leader change (with --expect-difference, 2 if the first one saw none)

soak: writes are scheduled open-loop at --rate per second for --seconds (so a slow write
does not slow the schedule), round-robin over --endpoints, each `POST /v3/kv/put` over a
kept-alive mutual-TLS connection; a bounded key space keeps the database small. Leader
changes are the growth of etcd_server_leader_changes_seen_total on each member (the
largest one counts: every member sees the same change), cross-checked by polling
`POST /v3/maintenance/status` twice a second for the leader id and Raft term.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional
from urllib.parse import urlsplit

METRICS = ("etcd_server_leader_changes_seen_total", "etcd_server_heartbeat_send_failures_total",
           "etcd_server_proposals_failed_total")


class Client:
    """One kept-alive connection per (thread, endpoint): HTTPS with the admin client cert,
    or plain HTTP for an http:// endpoint (local experiments on loopback)."""

    def __init__(self, cacert: Optional[str], cert: Optional[str], key: Optional[str], timeout: float) -> None:
        self.context: Optional[ssl.SSLContext] = None
        if cacert:
            self.context = ssl.create_default_context(cafile=cacert)
            if cert:
                self.context.load_cert_chain(cert, key)
        self.timeout = timeout
        self.local = threading.local()

    def _conn(self, endpoint: str) -> http.client.HTTPConnection:
        conns = self.local.__dict__.setdefault("conns", {})
        conn = conns.get(endpoint)
        if conn is None:
            url = urlsplit(endpoint)
            if url.scheme == "http":
                conn = http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=self.timeout)
            elif self.context is None:
                raise ValueError("%s: an https endpoint needs --cacert" % endpoint)
            else:
                conn = http.client.HTTPSConnection(url.hostname, url.port or 2379, timeout=self.timeout,
                                                   context=self.context)
            conns[endpoint] = conn
        return conn

    def request(self, endpoint: str, method: str, path: str, body: Optional[dict] = None) -> tuple[int, bytes]:
        conn = self._conn(endpoint)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except Exception:
            conn.close()
            self.local.conns.pop(endpoint, None)
            raise

    def json(self, endpoint: str, path: str, body: Optional[dict] = None) -> dict[str, Any]:
        status, data = self.request(endpoint, "POST", path, body or {})
        if status != 200:
            raise RuntimeError("%s%s: HTTP %d %s" % (endpoint, path, status, data[:200]))
        return json.loads(data)

    def metrics(self, endpoint: str) -> dict[str, float]:
        status, data = self.request(endpoint, "GET", "/metrics")
        if status != 200:
            raise RuntimeError("%s/metrics: HTTP %d" % (endpoint, status))
        found = {}
        for line in data.decode("utf-8", "replace").splitlines():
            for name in METRICS:
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return found


def percentile(values: list[float], fraction: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class LeaderWatch(threading.Thread):
    """Polls every member's status; records leader ids, switches and Raft terms."""

    def __init__(self, client: Client, endpoints: list[str], period: float) -> None:
        super().__init__(daemon=True)
        self.client, self.endpoints, self.period = client, endpoints, period
        self.stop_event = threading.Event()
        self.leaders_seen: set[str] = set()
        self.last_leader: dict[str, str] = {}
        self.switches = 0  # a member's known leader changed to another member
        self.no_leader_polls = 0
        self.first_term: dict[str, int] = {}
        self.last_term: dict[str, int] = {}
        self.errors = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            for endpoint in self.endpoints:
                try:
                    status = self.client.json(endpoint, "/v3/maintenance/status")
                except Exception:
                    self.errors += 1
                    continue
                leader = str(status.get("leader") or "0")
                term = int(status.get("raftTerm") or 0)
                self.first_term.setdefault(endpoint, term)
                self.last_term[endpoint] = term
                if leader == "0":
                    self.no_leader_polls += 1
                    continue
                self.leaders_seen.add(leader)
                previous = self.last_leader.get(endpoint)
                if previous is not None and previous != leader:
                    self.switches += 1
                self.last_leader[endpoint] = leader
            self.stop_event.wait(self.period)

    def term_delta(self) -> int:
        return max([self.last_term[e] - self.first_term[e] for e in self.last_term] or [0])


def soak(args: argparse.Namespace) -> int:
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    client = Client(args.cacert, args.cert, args.key, args.timeout)
    before = {e: client.metrics(e) for e in endpoints}
    watch = LeaderWatch(client, endpoints, 0.5)
    watch.start()

    total = int(args.rate * args.seconds)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    late = [0]
    lock = threading.Lock()
    value = b64("v" * args.value_bytes)

    def write(index: int, scheduled: float) -> None:
        endpoint = endpoints[index % len(endpoints)]
        body = {"key": b64("bench/cross-az/%s/%04d" % (args.label, index % args.keys)), "value": value}
        start = time.monotonic()
        try:
            status, data = client.request(endpoint, "POST", "/v3/kv/put", body)
            kind = None if status == 200 else "HTTP %d" % status
        except Exception as exc:  # timeouts, resets: counted, never fatal
            kind = type(exc).__name__
        elapsed = (time.monotonic() - start) * 1000.0
        with lock:
            if start - scheduled > 0.1:
                late[0] += 1
            if kind is None:
                latencies.append(elapsed)
            else:
                errors[kind] = errors.get(kind, 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for index in range(total):
            scheduled = started + index / args.rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() - started > args.seconds + 5:  # hard bound if the host stalls
                break
            pool.submit(write, index, scheduled)
    duration = time.monotonic() - started
    watch.stop_event.set()
    watch.join(5)
    after = {e: client.metrics(e) for e in endpoints}

    def delta(name: str) -> dict[str, int]:
        return {e: int(after[e].get(name, 0) - before[e].get(name, 0)) for e in endpoints}

    changes = delta(METRICS[0])
    summary = {
        "label": args.label,
        "heartbeat_interval": args.heartbeat,
        "election_timeout": args.election,
        "seconds": round(duration, 1),
        "rate": args.rate,
        "sent": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "late_starts": late[0],
        "p50_ms": round(percentile(latencies, 0.50) or 0, 1),
        "p90_ms": round(percentile(latencies, 0.90) or 0, 1),
        "p99_ms": round(percentile(latencies, 0.99) or 0, 1),
        "max_ms": round(max(latencies or [0]), 1),
        "leader_changes": max(changes.values() or [0]),
        "leader_changes_per_member": changes,
        "heartbeat_send_failures": sum(delta(METRICS[1]).values()),
        "proposals_failed": max(delta(METRICS[2]).values() or [0]),
        "raft_term_delta": watch.term_delta(),
        "leader_switches_polled": watch.switches,
        "leaders_seen": sorted(watch.leaders_seen),
        "no_leader_polls": watch.no_leader_polls,
        "status_poll_errors": watch.errors,
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    print("%s: %d/%d writes ok in %.0f s, p50 %.1f ms, p99 %.1f ms, %d leader change(s), Raft term +%d"
          % (args.label, summary["ok"], summary["sent"], duration, summary["p50_ms"], summary["p99_ms"],
             summary["leader_changes"], summary["raft_term_delta"]), file=sys.stderr)
    return 0


def peers(args: argparse.Namespace) -> int:
    client = Client(args.cacert, args.cert, args.key, args.timeout)
    members = client.json(args.endpoint, "/v3/cluster/member/list").get("members", [])
    for member in sorted(members, key=lambda m: m.get("name", "")):
        print("%s %s" % (member.get("name", "?"), ",".join(member.get("peerURLs", []))))
    return 0


def tuning(args: argparse.Namespace) -> int:
    """Find the etcd_rtt_tuning fact in an ansible.posix.json callback document."""
    with open(args.json_file, encoding="utf-8") as handle:
        text = handle.read()
    doc = json.loads(text[text.index("{"):])  # skip any warnings printed before the JSON
    found = None
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                facts = result.get("ansible_facts") or {}
                # The etcd_tuning role's fact (older runs named it etcd_rtt_tuning).
                for name in ("_etcd_tuning", "etcd_rtt_tuning"):
                    if name in facts:
                        found = facts[name]
                if result.get("failed") and result.get("msg"):
                    print("measure-rtt: %s" % result["msg"], file=sys.stderr)
    if found is None:
        print("measure-rtt.yml produced no _etcd_tuning fact", file=sys.stderr)
        return 1
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "module_utils"))
    import etcd_tuning  # noqa: E402 - the same table the playbook prints

    print(etcd_tuning.format_matrix(found["matrix"]))
    for reason in found["computed"]["reasons"]:
        print("  " + reason)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("%d %d\n" % (int(found["heartbeat_interval"]), int(found["election_timeout"])))
    return 0


def report(args: argparse.Namespace) -> int:
    runs = []
    for path in args.summaries:
        with open(path, encoding="utf-8") as handle:
            runs.append(json.load(handle))
    rows = [
        ("heartbeat / election ms", lambda r: "%s / %s" % (r["heartbeat_interval"], r["election_timeout"])),
        ("leader changes (metric)", lambda r: r["leader_changes"]),
        ("leader switches (polled)", lambda r: r["leader_switches_polled"]),
        ("raft term advanced", lambda r: r["raft_term_delta"]),
        ("writes ok / sent", lambda r: "%d / %d" % (r["ok"], r["sent"])),
        ("write errors", lambda r: r["errors"] if not r["error_kinds"] else "%d %s" % (
            r["errors"], ",".join("%s=%d" % kv for kv in sorted(r["error_kinds"].items())))),
        ("write p50 ms", lambda r: "%.1f" % r["p50_ms"]),
        ("write p99 ms", lambda r: "%.1f" % r["p99_ms"]),
        ("write max ms", lambda r: "%.1f" % r["max_ms"]),
        ("heartbeat send failures", lambda r: r["heartbeat_send_failures"]),
        ("writes started >100 ms late", lambda r: r["late_starts"]),
        ("soak seconds @ writes/s", lambda r: "%s @ %s" % (r["seconds"], r["rate"])),
    ]
    width = max(len(label) for label, _ in rows)
    cols = [[str(fn(r)) for r in runs] for _, fn in rows]
    colw = max([len(r["label"]) for r in runs] + [len(c) for row in cols for c in row])
    print("%s  %s" % ("".ljust(width), "  ".join(r["label"].rjust(colw) for r in runs)))
    for (label, _), values in zip(rows, cols):
        print("%s  %s" % (label.ljust(width), "  ".join(v.rjust(colw) for v in values)))
    first, last = runs[0], runs[-1]
    if last["leader_changes"] or last["raft_term_delta"]:
        print("FAIL: the %s cluster changed leader during the soak" % last["label"])
        return 1
    if args.expect_difference and len(runs) > 1 and not (first["leader_changes"] or first["raft_term_delta"]):
        print("NO DIFFERENCE: the %s cluster did not change leader either; the link was not bad enough to "
              "tell the timeouts apart" % first["label"])
        return 2
    print("PASS: no leader change on the %s cluster" % last["label"] + (
        ", %d on the %s one" % (first["leader_changes"], first["label"]) if len(runs) > 1 else ""))
    return 0


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def tls(p: argparse.ArgumentParser) -> None:  # needed for https:// endpoints, unused for http://
        p.add_argument("--cacert")
        p.add_argument("--cert")
        p.add_argument("--key")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds per request")

    p = sub.add_parser("soak")
    tls(p)
    p.add_argument("--endpoints", required=True, help="comma-separated client URLs")
    p.add_argument("--label", required=True)
    p.add_argument("--rate", type=float, default=50.0, help="writes per second")
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--workers", type=int, default=128, help="writes in flight at most")
    p.add_argument("--keys", type=int, default=1000, help="distinct keys written in turn")
    p.add_argument("--value-bytes", type=int, default=128)
    p.add_argument("--heartbeat", type=int, required=True, help="recorded in the summary")
    p.add_argument("--election", type=int, required=True, help="recorded in the summary")
    p.add_argument("--out", required=True)
    p.set_defaults(func=soak)

    p = sub.add_parser("peers")
    tls(p)
    p.add_argument("--endpoint", required=True)
    p.set_defaults(func=peers)

    p = sub.add_parser("tuning")
    p.add_argument("json_file")
    p.add_argument("--out", required=True, help="file to receive 'HEARTBEAT ELECTION'")
    p.set_defaults(func=tuning)

    p = sub.add_parser("report")
    p.add_argument("summaries", nargs="+")
    p.add_argument("--expect-difference", action="store_true",
                   help="exit 2 when the first soak saw no leader change either")
    p.set_defaults(func=report)
    args = parser.parse_args(argv)
    if getattr(args, "rate", 1) <= 0 or getattr(args, "seconds", 1) <= 0:
        parser.error("--rate and --seconds must be positive")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
