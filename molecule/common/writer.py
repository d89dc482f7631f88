"""Load writer that proves a rolling upgrade loses no acknowledged write.

It talks to etcd through a real client library (aetcd, asyncio + gRPC) over mutual TLS.
With etcd auth on, the client certificate's CN is the etcd user: no username/password.

    writer.py run --endpoints https://A:2379,https://B:2379,https://C:2379 \\
        --cacert CA --cert CRT --key KEY --prefix /writer/run1/ --rate 50 --out result.json \\
        [--duration SECONDS] [--stop-file PATH]

Writes `<prefix><seq:08d>` one at a time, at most --rate a second, until --duration passes,
SIGTERM/SIGINT arrives or --stop-file exists. A write that fails (2 s per attempt, refused
connection, leader change, no leader...) is recorded and the SAME seq is retried on the next
endpoint, round robin; a seq is acknowledged only once put() returned. The result JSON
(rewritten atomically every ~2 s, so a killed writer still leaves evidence) holds:
acked (seqs), acks ({seq, endpoint, latency_ms, ts}), failures ({seq, endpoint, error, t}),
attempts, failed_attempts, latency_ms {p50, p99, max} of acknowledged puts, longest_stall_ms
(first attempt of a seq to its ack), longest_gap_ms (between consecutive acks),
leader_changes (leader id changes seen by polling aetcd's status() every 0.5 s), leaders
(that timeline), term_changes (raft term rises seen in the put responses' headers),
pending_seq (a seq still unacknowledged at the stop), started, finished (unix times), prefix.
With auth on, etcd (3.5.30, tested) answers Status to root only: a non-root writer then reports
leader_changes null with status_error saying why, and term_changes is the election count
to go by (every new leader means a new term).

    writer.py verify --endpoints ... --cacert CA --cert CRT --key KEY --result result.json

Reads every key under the prefix and checks each acknowledged seq holds the value written
for it (a key holding another value counts as missing). Prints {"acked", "present",
"missing" (first 20), "missing_count"}; exit 0 only when nothing is missing, 1 otherwise
(2 when no endpoint answered).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

import aetcd
import grpc
from aetcd import rpc, watcher

ATTEMPT_TIMEOUT = 2.0  # seconds a single put may take before we fail over
STATUS_INTERVAL = 0.5
CHECKPOINT_INTERVAL = 2.0
CHANNEL_OPTIONS = {
    # A restarted member should be usable again within a second, not after gRPC's
    # default exponential backoff (up to 120 s) grown while it was down.
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 1000,
    # verify reads the whole prefix in one range: allow more than the 4 MiB default.
    "grpc.max_receive_message_length": 512 * 1024 * 1024,
}


class TLSClient(aetcd.Client):
    """aetcd.Client over a mutual-TLS channel.

    aetcd 1.0.0's connect() always opens grpc.aio.insecure_channel and has no TLS options,
    so this re-does connect() with a secure channel; the rest of the client is unchanged.
    """

    def __init__(self, host: str, port: int, credentials: grpc.ChannelCredentials, timeout: float):
        # aetcd annotates timeout as int but only hands it to gRPC, which takes a float.
        super().__init__(host=host, port=port, timeout=timeout, options=CHANNEL_OPTIONS)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        # Mirrors aetcd.Client.connect minus the password login (the certificate is the login).
        self.channel = rpc.secure_channel(f"{self._host}:{self._port}", self._credentials,
                                          options=list(self._options.items()))
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                        metadata=self.metadata)
        self._connected.set()


def make_clients(endpoints: str, cacert: str, cert: str, key: str) -> Dict[str, TLSClient]:
    """One client per endpoint, keyed by the endpoint as given."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(cacert).read_bytes(),
        private_key=Path(key).read_bytes(),
        certificate_chain=Path(cert).read_bytes(),
    )
    clients: Dict[str, TLSClient] = {}
    for endpoint in (e.strip() for e in endpoints.split(",") if e.strip()):
        url = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        clients[endpoint] = TLSClient(url.hostname or "localhost", url.port or 2379, credentials,
                                      ATTEMPT_TIMEOUT)
    if not clients:
        raise SystemExit("no endpoints given")
    return clients


def key_for(prefix: str, seq: int) -> bytes:
    return f"{prefix}{seq:08d}".encode()


def value_for(seq: int, ts: float) -> bytes:
    # verify rebuilds this from the ack's seq and ts, so it must stay deterministic.
    return json.dumps({"seq": seq, "ts": ts}, separators=(",", ":")).encode()


def error_text(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def percentile(sorted_values: List[float], p: float) -> Optional[float]:
    """Nearest-rank percentile; None when there is nothing to rank."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 3)


def write_json_atomically(path: str, data: Dict[str, Any]) -> None:
    # Readers (and a writer killed mid-write) must only ever see a complete file.
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".writer-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class Writer:
    """The run subcommand: a paced, failing-over sequence of puts plus its evidence."""

    def __init__(self, clients: Dict[str, TLSClient], args: argparse.Namespace):
        self.clients = clients
        self.endpoints = list(clients)
        self.args = args
        self.stop = asyncio.Event()
        self.started = time.time()
        self.finished: Optional[float] = None
        self.acks: List[Dict[str, Any]] = []
        self.failures: List[Dict[str, Any]] = []
        self.attempts = 0
        self.latencies: List[float] = []
        self.longest_stall = 0.0
        self.longest_gap = 0.0
        self.last_ack: Optional[float] = None  # monotonic time of the previous ack
        self.pending: Optional[int] = None
        self.leaders: List[Dict[str, Any]] = []
        self.status_ok = False
        self.status_error: Optional[str] = None
        self.term: Optional[int] = None  # raft term of the last put response
        self.term_changes = 0

    def should_stop(self) -> bool:
        if self.args.duration is not None and time.time() - self.started >= self.args.duration:
            self.stop.set()
        if self.args.stop_file and os.path.exists(self.args.stop_file):
            self.stop.set()
        return self.stop.is_set()

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once on a stop signal."""
        try:
            await asyncio.wait_for(self.stop.wait(), max(0.0, seconds))
        except asyncio.TimeoutError:
            pass

    async def write_one(self, seq: int, current: int) -> int:
        """Put seq until acknowledged (or stopped); return the endpoint index to use next."""
        first_start = time.monotonic()
        ts = round(time.time(), 6)
        key, value = key_for(self.args.prefix, seq), value_for(seq, ts)
        failed_in_a_row = 0
        while not self.should_stop():
            self.pending = seq
            endpoint = self.endpoints[current]
            self.attempts += 1
            start = time.monotonic()
            try:
                # gRPC has its own deadline; wait_for also bounds anything outside it.
                put = await asyncio.wait_for(self.clients[endpoint].put(key, value), ATTEMPT_TIMEOUT + 0.5)
            except Exception as exc:  # any failure means: not acknowledged, try the next member
                self.failures.append({"seq": seq, "endpoint": endpoint, "error": error_text(exc),
                                      "t": round(time.time(), 3)})
                current = (current + 1) % len(self.endpoints)
                failed_in_a_row += 1
                if failed_in_a_row % len(self.endpoints) == 0:
                    # Every member refused in turn (e.g. no leader yet): don't spin.
                    await self.pause(0.2)
                continue
            done = time.monotonic()
            latency = (done - start) * 1000
            self.latencies.append(latency)
            self.acks.append({"seq": seq, "endpoint": endpoint, "latency_ms": round(latency, 3), "ts": ts})
            self.longest_stall = max(self.longest_stall, (done - first_start) * 1000)
            if self.last_ack is not None:
                self.longest_gap = max(self.longest_gap, (done - self.last_ack) * 1000)
            self.last_ack = done
            if self.term is not None and put.header.raft_term > self.term:
                self.term_changes += 1
            self.term = max(self.term or 0, put.header.raft_term)
            self.pending = None
            break
        return current

    async def write_loop(self) -> None:
        interval = 1.0 / self.args.rate
        next_due = time.monotonic()
        current, seq = 0, 0
        while not self.should_stop():
            current = await self.write_one(seq, current)
            if self.pending is not None:
                break  # stopped while this seq was still unacknowledged
            seq += 1
            # Pace from the schedule, but never burst to catch up after a stall.
            next_due = max(next_due + interval, time.monotonic())
            await self.pause(next_due - time.monotonic())

    async def watch_leader(self) -> None:
        """Poll status() round robin and keep a timeline of the leader ids seen."""
        index = 0
        while not self.stop.is_set():
            endpoint = self.endpoints[index % len(self.endpoints)]
            index += 1
            try:
                status = await asyncio.wait_for(self.clients[endpoint].status(), ATTEMPT_TIMEOUT + 0.5)
                self.status_ok = True
                leader = status.leader.id if status.leader is not None else 0
                # 0 means "no leader" (mid election): not a leader of its own.
                if leader and (not self.leaders or self.leaders[-1]["leader"] != f"{leader:x}"):
                    self.leaders.append({"t": round(time.time(), 3), "leader": f"{leader:x}",
                                         "endpoint": endpoint})
            except Exception as exc:
                # A down member is the writer's business to record, not the poller's.
                self.status_error = error_text(exc)
            await self.pause(STATUS_INTERVAL)

    async def checkpoint_loop(self) -> None:
        while not self.stop.is_set():
            await self.pause(CHECKPOINT_INTERVAL)
            write_json_atomically(self.args.out, self.result())

    def result(self) -> Dict[str, Any]:
        latencies = sorted(self.latencies)
        return {
            "acked": [a["seq"] for a in self.acks],
            "acks": self.acks,
            "failures": self.failures,
            "attempts": self.attempts,
            "failed_attempts": len(self.failures),
            "latency_ms": {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                           "max": round(latencies[-1], 3) if latencies else None},
            "longest_stall_ms": round(self.longest_stall, 3),
            "longest_gap_ms": round(self.longest_gap, 3),
            # None: status() never answered (e.g. permission denied), so nothing was counted.
            "leader_changes": max(0, len(self.leaders) - 1) if self.status_ok else None,
            "leaders": self.leaders,
            "status_error": None if self.status_ok else self.status_error,
            "term_changes": self.term_changes,
            "pending_seq": self.pending,
            "started": self.started,
            "finished": self.finished,
            "prefix": self.args.prefix,
            "endpoints": self.endpoints,
        }

    async def run(self) -> Dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        helpers = [loop.create_task(self.watch_leader()), loop.create_task(self.checkpoint_loop())]
        try:
            await self.write_loop()
        finally:
            self.stop.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.finished = time.time()
            result = self.result()
            write_json_atomically(self.args.out, result)
            await asyncio.gather(*(c.close() for c in self.clients.values()), return_exceptions=True)
        return result


async def cmd_run(args: argparse.Namespace) -> int:
    result = await Writer(make_clients(args.endpoints, args.cacert, args.cert, args.key), args).run()
    lat = result["latency_ms"]
    print(f"writer: acked={len(result['acked'])} attempts={result['attempts']} "
          f"failed_attempts={result['failed_attempts']} leader_changes={result['leader_changes']} "
          f"term_changes={result['term_changes']} "
          f"longest_stall_ms={result['longest_stall_ms']} longest_gap_ms={result['longest_gap_ms']} "
          f"p50={lat['p50']} p99={lat['p99']} max={lat['max']} out={args.out}")
    return 0


async def cmd_verify(args: argparse.Namespace) -> int:
    result = json.loads(Path(args.result).read_text())
    prefix: str = result["prefix"]
    clients = make_clients(args.endpoints, args.cacert, args.cert, args.key)
    stored: Optional[Dict[bytes, bytes]] = None
    errors: List[str] = []
    try:
        for endpoint, client in clients.items():  # any one member that answers will do
            try:
                # Linearizable read (aetcd's default), so a lagging member can't hide a write.
                got = await client.get_prefix(prefix.encode())
            except Exception as exc:
                errors.append(f"{endpoint}: {error_text(exc)}")
                continue
            stored = {kv.key: kv.value for kv in got}  # GetRange is a plain iterable
            break
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()), return_exceptions=True)
    if stored is None:
        print(json.dumps({"error": "no endpoint answered", "errors": errors}))
        return 2
    missing = [a["seq"] for a in result["acks"]
               if stored.get(key_for(prefix, a["seq"])) != value_for(a["seq"], a["ts"])]
    print(json.dumps({"acked": len(result["acks"]), "present": len(result["acks"]) - len(missing),
                      "missing": missing[:20], "missing_count": len(missing)}))
    return 1 if missing else 0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "verify"):
        p = sub.add_parser(name)
        p.add_argument("--endpoints", required=True, help="comma-separated https://host:port list")
        p.add_argument("--cacert", required=True)
        p.add_argument("--cert", required=True)
        p.add_argument("--key", required=True)
        if name == "run":
            p.add_argument("--prefix", required=True)
            p.add_argument("--rate", type=float, default=50.0, help="at most this many writes a second")
            p.add_argument("--out", required=True)
            p.add_argument("--duration", type=float, help="seconds; default: until signalled")
            p.add_argument("--stop-file", help="stop once this file exists")
        else:
            p.add_argument("--result", required=True, help="the JSON that run wrote")
    args = parser.parse_args(argv)
    if args.command == "run" and args.rate <= 0:
        parser.error("--rate must be positive")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return asyncio.run(cmd_run(args) if args.command == "run" else cmd_verify(args))


if __name__ == "__main__":
    sys.exit(main())
