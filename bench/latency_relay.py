#!/usr/bin/env python3
"""TCP relay that adds latency, for testing etcd across "availability zones".

This kernel has no tc netem, so latency is injected in user space: the relay accepts
TCP connections on LISTEN, opens one to TARGET for each, and forwards the bytes both
ways, holding every chunk for D/2 +- J/2 milliseconds (uniformly random) in EACH
direction. A request/response round trip through the relay therefore gains about D ms.
Bytes are never reordered within a connection (each direction is a FIFO; a chunk
never overtakes the one before it) and nothing is parsed: TLS passes through untouched.
EOF (half-close) is forwarded after the data before it; a reset on either side closes both.

    latency_relay.py --listen 172.31.240.1:12381 --target 172.31.240.11:2380 \\
                     --listen 172.31.240.1:12382 --target 172.31.240.12:2380 \\
                     --delay-ms 40 --jitter-ms 10 --max-seconds 1800

    latency_relay.py --spec '[{"listen": "127.0.0.1:9000", "target": "127.0.0.1:9001",
                               "delay_ms": 40, "jitter_ms": 10}]' --max-seconds 60

--listen/--target pairs match by order; a spec entry may carry its own delay_ms and
jitter_ms (the flags are the default). --spec also takes @FILE. The relay is bounded:
it exits after --max-seconds (or on SIGINT/SIGTERM), closing every connection, and
prints one JSON line of per-route totals on stderr. It binds and dials only addresses
in --allow-net (default: the lab network 172.31.240.0/24 and loopback).
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

DEFAULT_ALLOW = "172.31.240.0/24,127.0.0.0/8,::1/128"
CHUNK = 65536
QUEUE_CHUNKS = 256  # per direction; a full queue stops reading (TCP back-pressure)


@dataclass
class Route:
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    delay_ms: float
    jitter_ms: float
    connections: int = 0
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0  # target -> client
    errors: int = 0

    @property
    def name(self) -> str:
        return "%s:%d->%s:%d" % (self.listen_host, self.listen_port, self.target_host, self.target_port)

    def one_way_delay(self, rng: random.Random) -> float:
        """Seconds to hold one chunk: D/2 +- J/2, never negative."""
        half = self.delay_ms / 2.0
        spread = self.jitter_ms / 2.0
        return max(0.0, half + rng.uniform(-spread, spread)) / 1000.0


def parse_hostport(text: str) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("%r is not HOST:PORT" % text)
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("%r: give an IP address, not a host name" % text)
    port = int(port_text)
    if not 0 <= port < 65536:
        raise ValueError("%r: bad port" % text)
    return host, port


def check_allowed(host: str, allow: Sequence[ipaddress._BaseNetwork]) -> None:
    address = ipaddress.ip_address(host)
    if not any(address.version == net.version and address in net for net in allow):
        raise ValueError("%s is outside the allowed networks (%s)" % (host, ", ".join(str(n) for n in allow)))


def build_routes(args: argparse.Namespace) -> list[Route]:
    allow = [ipaddress.ip_network(n.strip(), strict=False) for n in args.allow_net.split(",") if n.strip()]
    entries: list[dict[str, Any]] = []
    if args.spec:
        text = args.spec
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as handle:
                text = handle.read()
        spec = json.loads(text)
        if isinstance(spec, dict):
            spec = spec.get("routes", [spec])
        entries.extend(spec)
    listens, targets = args.listen or [], args.target or []
    if len(listens) != len(targets):
        raise ValueError("give one --target for every --listen (%d vs %d)" % (len(listens), len(targets)))
    entries.extend({"listen": lst, "target": tgt} for lst, tgt in zip(listens, targets))
    if not entries:
        raise ValueError("nothing to relay: give --listen/--target pairs or --spec")
    routes = []
    for entry in entries:
        lhost, lport = parse_hostport(str(entry["listen"]))
        thost, tport = parse_hostport(str(entry["target"]))
        for host in (lhost, thost):
            check_allowed(host, allow)
        delay = float(entry.get("delay_ms", args.delay_ms))
        jitter = float(entry.get("jitter_ms", args.jitter_ms))
        if delay < 0 or jitter < 0 or jitter > 2 * delay:
            raise ValueError("%s: need 0 <= jitter_ms <= 2 x delay_ms" % entry)
        routes.append(Route(lhost, lport, thost, tport, delay, jitter))
    return routes


@dataclass
class Relay:
    routes: list[Route]
    connect_timeout: float = 5.0
    seed: Optional[int] = None
    verbose: bool = False
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def log(self, message: str) -> None:
        if self.verbose:
            print("latency_relay: %s" % message, file=sys.stderr, flush=True)

    async def start(self) -> None:
        for route in self.routes:
            server = await asyncio.start_server(
                lambda r, w, route=route: self._spawn(route, r, w),
                host=route.listen_host, port=route.listen_port, reuse_address=True)
            if route.listen_port == 0:
                route.listen_port = server.sockets[0].getsockname()[1]
            self.servers.append(server)

    def _spawn(self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._connection(route, reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _pump(self, route: Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    upstream: bool) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

        async def read_side() -> None:
            while True:
                data = await reader.read(CHUNK)
                await queue.put((loop.time() + route.one_way_delay(self.rng), data))
                if not data:
                    return
                if upstream:
                    route.bytes_up += len(data)
                else:
                    route.bytes_down += len(data)

        async def write_side() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:  # EOF after everything before it: half-close the other side
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        reading = loop.create_task(read_side())
        writing = loop.create_task(write_side())
        try:
            # Ends when both finish (EOF forwarded) or either fails (reset: closes both sides).
            done, _ = await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in (reading, writing):
                task.cancel()
            await asyncio.gather(reading, writing, return_exceptions=True)

    async def _connection(self, route: Route, client_r: asyncio.StreamReader,
                          client_w: asyncio.StreamWriter) -> None:
        route.connections += 1
        self.writers.add(client_w)
        upstream_w: Optional[asyncio.StreamWriter] = None
        try:
            try:
                upstream_r, upstream_w = await asyncio.wait_for(
                    asyncio.open_connection(route.target_host, route.target_port), self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                route.errors += 1
                self.log("%s: cannot reach the target: %s" % (route.name, exc or "timeout"))
                return
            self.writers.add(upstream_w)
            for w in (client_w, upstream_w):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pumps = [
                asyncio.ensure_future(self._pump(route, client_r, upstream_w, True)),
                asyncio.ensure_future(self._pump(route, upstream_r, client_w, False)),
            ]
            try:
                done, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.exception() is not None:
                        route.errors += 1
                        self.log("%s: %s" % (route.name, task.exception()))
            finally:
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            for w in (client_w, upstream_w):
                if w is None:
                    continue
                self.writers.discard(w)
                w.close()
                try:
                    await asyncio.wait_for(w.wait_closed(), 2)
                except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
                    pass

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for w in list(self.writers):
            w.close()
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except asyncio.TimeoutError:
                pass

    def totals(self) -> dict[str, Any]:
        return {r.name: {"delay_ms": r.delay_ms, "jitter_ms": r.jitter_ms, "connections": r.connections,
                         "bytes_up": r.bytes_up, "bytes_down": r.bytes_down, "errors": r.errors}
                for r in self.routes}


async def run(routes: list[Route], max_seconds: float, seed: Optional[int] = None, verbose: bool = False) -> Relay:
    relay = Relay(routes, seed=seed, verbose=verbose)
    await relay.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    for route in routes:
        print("latency_relay: listening %s, delay %.0f +- %.0f ms per round trip"
              % (route.name, route.delay_ms, route.jitter_ms), file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except asyncio.TimeoutError:
        pass
    await relay.stop()
    print(json.dumps({"relay_seconds": round(time.monotonic() - started, 1), "routes": relay.totals()}),
          file=sys.stderr, flush=True)
    return relay


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", action="append", metavar="HOST:PORT", help="address to accept on (repeatable)")
    parser.add_argument("--target", action="append", metavar="HOST:PORT", help="address to forward to (repeatable)")
    parser.add_argument("--spec", help="JSON list of {listen, target[, delay_ms, jitter_ms]}, or @FILE")
    parser.add_argument("--delay-ms", type=float, default=40.0, help="added round-trip time, ms (default 40)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="round-trip jitter, +- J/2 per direction (default 0)")
    parser.add_argument("--max-seconds", type=float, required=True, help="exit after this many seconds")
    parser.add_argument("--allow-net", default=DEFAULT_ALLOW, help="comma-separated CIDRs that may be bound or dialled")
    parser.add_argument("--seed", type=int, help="random seed for the jitter")
    parser.add_argument("--verbose", action="store_true", help="log connection errors")
    args = parser.parse_args(argv)
    if args.max_seconds <= 0:
        parser.error("--max-seconds must be positive")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        routes = build_routes(args)
    except (ValueError, KeyError, OSError) as exc:
        print("latency_relay: %s" % exc, file=sys.stderr)
        return 2
    try:
        asyncio.run(run(routes, args.max_seconds, seed=args.seed, verbose=args.verbose))
    except OSError as exc:  # cannot bind
        print("latency_relay: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
