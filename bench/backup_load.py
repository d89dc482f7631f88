#!/usr/bin/env python3
"""Helpers for bench/backup.sh (standard library only; HTTPS gRPC gateway with the admin cert).

    fill     write incompressible values until the leader reports a database of --bytes
    load     open-loop small writes at --rate for --seconds; one JSON file with every write's
             wall-clock start and latency
    report   side-by-side write latency: the load without a snapshot, and the load while
             the snapshot ran (only the writes that started inside the snapshot's window)
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cross_az_load import Client, percentile  # noqa: E402


def endpoints_of(text: str) -> list[str]:
    return [e.strip() for e in text.split(",") if e.strip()]


def db_size(client: Client, endpoint: str) -> int:
    return int(client.json(endpoint, "/v3/maintenance/status").get("dbSize", 0))


def fill(args: argparse.Namespace) -> int:
    endpoints = endpoints_of(args.endpoints)
    client = Client(args.cacert, args.cert, args.key, 60)
    start = time.monotonic()
    written = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def worker(n: int) -> None:
        i = n
        while not stop.is_set():
            value = base64.b64encode(os.urandom(args.value_bytes)).decode()
            key = base64.b64encode(b"bench/backup/fill/%08d" % i).decode()
            client.json(endpoints[i % len(endpoints)], "/v3/kv/put", {"key": key, "value": value})
            with lock:
                written[0] += 1
            i += args.workers

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(worker, n) for n in range(args.workers)]
        size = 0
        while size < args.bytes:
            time.sleep(2)
            if any(f.done() for f in futures):
                stop.set()
                for f in futures:
                    f.result()  # re-raise the writer's error
            size = db_size(client, endpoints[0])
        stop.set()
    print(json.dumps({"keys": written[0], "value_bytes": args.value_bytes, "db_size": db_size(client, endpoints[0]),
                      "seconds": round(time.monotonic() - start, 1)}))
    return 0


def load(args: argparse.Namespace) -> int:
    endpoints = endpoints_of(args.endpoints)
    client = Client(args.cacert, args.cert, args.key, 10)
    value = base64.b64encode(b"v" * args.value_bytes).decode()
    samples: list[tuple[float, float | None, str]] = []
    lock = threading.Lock()

    def write(index: int) -> None:
        body = {"key": base64.b64encode(b"bench/backup/load/%04d" % (index % 1000)).decode(), "value": value}
        wall, start = time.time(), time.monotonic()
        try:
            status, _ = client.request(endpoints[index % len(endpoints)], "POST", "/v3/kv/put", body)
            error = "" if status == 200 else "HTTP %d" % status
        except Exception as exc:  # counted, never fatal
            error = type(exc).__name__
        elapsed = (time.monotonic() - start) * 1000.0
        with lock:
            samples.append((wall, None if error else elapsed, error))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for index in range(int(args.rate * args.seconds)):
            delay = started + index / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pool.submit(write, index)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"rate": args.rate, "seconds": args.seconds, "samples": samples}, f)
    return 0


def stats(samples: list, start: float = 0.0, end: float = float("inf")) -> dict:
    inside = [s for s in samples if start <= s[0] <= end]
    ok = [s[1] for s in inside if s[1] is not None]
    return {"writes": len(inside), "errors": sum(1 for s in inside if s[2]),
            "p50": percentile(ok, 0.50), "p99": percentile(ok, 0.99), "max": max(ok) if ok else None}


def report(args: argparse.Namespace) -> int:
    base = json.load(open(args.baseline, encoding="utf-8"))["samples"]
    during = json.load(open(args.during, encoding="utf-8"))["samples"]
    job = json.load(open(args.job, encoding="utf-8"))
    window = (job["started"], job["finished"])
    saved = job["started"] + job.get("save_seconds", 0)
    rows = [("no snapshot (whole run)", stats(base)),
            ("snapshot running (writes inside its window)", stats(during, *window)),
            ("  of those, during snapshot save", stats(during, window[0], saved)),
            ("  of those, during verify", stats(during, saved, window[1])),
            ("same run, outside the window", stats([s for s in during if not window[0] <= s[0] <= window[1]]))]
    fmt = "%-46s %7s %7s %9s %9s %9s"
    print(fmt % ("client writes (256 B, round-robin)", "writes", "errors", "p50 ms", "p99 ms", "max ms"))
    for label, r in rows:
        cell = lambda v: "-" if v is None else "%.1f" % v  # noqa: E731
        print(fmt % (label, r["writes"], r["errors"], cell(r["p50"]), cell(r["p99"]), cell(r["max"])))
    p99_base, p99_snap = rows[0][1]["p99"], rows[1][1]["p99"]
    if p99_base and p99_snap:
        print("p99 with a snapshot running is %.2fx the p99 without" % (p99_snap / p99_base))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("fill", "load"):
        p = sub.add_parser(name)
        p.add_argument("--endpoints", required=True)
        p.add_argument("--cacert", required=True)
        p.add_argument("--cert", required=True)
        p.add_argument("--key", required=True)
    p = sub.choices["fill"]
    p.add_argument("--bytes", type=int, default=1 << 30)
    p.add_argument("--value-bytes", type=int, default=512 * 1024)
    p.add_argument("--workers", type=int, default=4)
    p = sub.choices["load"]
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--value-bytes", type=int, default=256)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--baseline", required=True)
    p.add_argument("--during", required=True)
    p.add_argument("--job", required=True, help="the backup job's last-run.json plus its start time")
    args = parser.parse_args()
    return {"fill": fill, "load": load, "report": report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
