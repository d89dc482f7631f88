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

Bad-link mode (--stall-probability > 0): what breaks Raft on a real bad link is not the
average delay but silence: a burst of lost segments makes TCP retransmit with a doubling
timeout (200, 400, 800 ms, ...), and all the bytes behind the lost one wait. The relay
reproduces that per route and per direction: time is cut into --stall-every-ms slots and
at the start of each slot, with --stall-probability, a stall of --stall-ms (up to
--stall-max-ms, uniformly) begins, during which that direction delivers nothing, on every
connection of the route (new ones too, so a probe sees it). What was held is delivered in
order when the stall ends. --stall-direction picks up (client -> target), down or both.
The stall schedule depends only on --seed, the route and the direction, and runs from the
moment the bad link is switched on, so two runs (or two soaks) meet the same stalls at
the same offsets. --stalls-paused starts with the bad link off; SIGUSR1 switches it on
(the schedule starts again from the seed), SIGUSR2 off.

    latency_relay.py --listen 127.0.0.1:12381 --target 127.0.0.1:2380 --delay-ms 40 \
                     --stall-probability 0.02 --stall-ms 1200 --stall-max-ms 2500 \
                     --stall-direction down --seed 1 --max-seconds 600

--listen/--target pairs match by order; a spec entry may carry its own delay_ms,
jitter_ms and stall_* values (stall_probability, stall_every_ms, stall_ms, stall_max_ms,
stall_direction; the flags are the default). --spec also takes @FILE. The relay is bounded:
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
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

DEFAULT_ALLOW = "172.31.240.0/24,127.0.0.0/8,::1/128"
CHUNK = 65536
QUEUE_CHUNKS = 256  # per direction; a full queue stops reading (TCP back-pressure)
MAX_STALL_MS = 60000.0
DIRECTIONS = ("up", "down")


@dataclass(frozen=True)
class StallSpec:
    """Bad-link stalls: per --stall-every-ms slot, with this probability, hold min_ms..max_ms."""

    probability: float = 0.0
    every_ms: float = 1000.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    direction: str = "both"

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("stall probability must be between 0 and 1, got %r" % self.probability)
        if self.every_ms <= 0:
            raise ValueError("stall_every_ms must be positive, got %r" % self.every_ms)
        if not 0.0 <= self.min_ms <= self.max_ms <= MAX_STALL_MS:
            raise ValueError("need 0 <= stall_ms <= stall_max_ms <= %d, got %r..%r"
                             % (MAX_STALL_MS, self.min_ms, self.max_ms))
        if self.direction not in DIRECTIONS + ("both",):
            raise ValueError("stall direction must be up, down or both, got %r" % self.direction)
        if self.probability > 0 and self.max_ms <= 0:
            raise ValueError("a stall probability needs stall_ms > 0")
        if self.probability >= 1 and self.min_ms >= self.every_ms:
            raise ValueError("stalls of %g ms or more in every %g ms slot: the link would never clear"
                             % (self.min_ms, self.every_ms))

    def applies(self, direction: str) -> bool:
        return self.probability > 0 and self.direction in (direction, "both")


class StallSchedule:
    """When one direction of one route is silent, from the slot draws of a seeded RNG.

    Slot k starts at epoch + k x every: one draw decides whether a stall starts there,
    a second one its length. The draws never depend on the traffic, so the same seed gives
    the same stalls at the same offsets. Times are in seconds, on the caller's clock.
    """

    def __init__(self, spec: StallSpec, rng: random.Random, epoch: float) -> None:
        self.spec, self.rng, self.epoch = spec, rng, epoch
        self.every = spec.every_ms / 1000.0
        self.next_slot = 0
        self.windows: deque[tuple[float, float]] = deque()  # (start, end), in start order
        self.stalls = 0
        self.stalled_ms = 0.0

    def draw_until(self, now: float) -> None:
        """Draw every slot that has started by now (the totals count the stalls drawn)."""
        while self.epoch + self.next_slot * self.every <= now:
            start = self.epoch + self.next_slot * self.every
            self.next_slot += 1
            if self.rng.random() < self.spec.probability:
                length = self.rng.uniform(self.spec.min_ms, self.spec.max_ms) / 1000.0
                self.windows.append((start, start + length))
                self.stalls += 1
                self.stalled_ms += length * 1000.0

    def release(self, now: float) -> float:
        """The first moment at or after now outside every stall (now itself when clear).

        A stall that starts inside another one extends it; one hold never lasts more
        than MAX_STALL_MS all the same.
        """
        self.draw_until(now)
        while self.windows and self.windows[0][1] <= now:
            self.windows.popleft()
        moment, index, limit = now, 0, now + MAX_STALL_MS / 1000.0
        while index < len(self.windows) and moment < limit:  # ordered by start
            start, end = self.windows[index]
            if start > moment:
                break
            if moment < end:
                moment = end
                self.draw_until(min(moment, limit))
            index += 1
        return min(moment, limit)


@dataclass
class Route:
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    delay_ms: float
    jitter_ms: float
    stall: StallSpec = field(default_factory=StallSpec)
    connections: int = 0
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0  # target -> client
    errors: int = 0
    held_chunks: int = 0  # chunks a stall held past their delay
    schedules: dict[str, StallSchedule] = field(default_factory=dict)

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
        shortest = float(entry.get("stall_ms", args.stall_ms))
        if "stall_max_ms" in entry or "stall_ms" in entry:  # an entry's stall_ms alone: fixed length
            longest = float(entry.get("stall_max_ms", shortest))
        else:
            longest = args.stall_max_ms if args.stall_max_ms is not None else shortest
        stall = StallSpec(
            probability=float(entry.get("stall_probability", args.stall_probability)),
            every_ms=float(entry.get("stall_every_ms", args.stall_every_ms)),
            min_ms=shortest, max_ms=float(longest),
            direction=str(entry.get("stall_direction", args.stall_direction)),
        )
        routes.append(Route(lhost, lport, thost, tport, delay, jitter, stall))
    return routes


@dataclass
class Relay:
    routes: list[Route]
    connect_timeout: float = 5.0
    seed: Optional[int] = None
    verbose: bool = False
    stalls_paused: bool = False
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.bad_link_switches = 0

    def stalls_on(self, now: Optional[float] = None) -> None:
        """Switch the bad link on; every schedule starts again from the seed, at now."""
        if now is None:
            now = asyncio.get_running_loop().time()
        self._draw_all(now)
        self.bad_link_switches += 1
        for index, route in enumerate(self.routes):
            for direction in DIRECTIONS:
                if route.stall.applies(direction):
                    # A string seed hashes the same in every process (unlike hash()).
                    rng = random.Random("%s/%d/%s" % (self.seed, index, direction)) if self.seed is not None \
                        else random.Random()
                    old = route.schedules.get(direction)
                    schedule = StallSchedule(route.stall, rng, now)
                    if old is not None:  # keep the totals across switches
                        schedule.stalls, schedule.stalled_ms = old.stalls, old.stalled_ms
                    route.schedules[direction] = schedule
        self.stalls_paused = False
        self.log("bad link on")

    def stalls_off(self, now: Optional[float] = None) -> None:
        self._draw_all(asyncio.get_running_loop().time() if now is None else now)
        self.stalls_paused = True
        self.log("bad link off")

    def _draw_all(self, now: float) -> None:
        """Count the stalls of the period that ends now, traffic or not."""
        if not self.stalls_paused:
            for route in self.routes:
                for schedule in route.schedules.values():
                    schedule.draw_until(now)

    def hold_until(self, route: Route, direction: str, now: float) -> float:
        schedule = route.schedules.get(direction)
        if schedule is None or self.stalls_paused:
            return now
        return schedule.release(now)

    def log(self, message: str) -> None:
        if self.verbose:
            print("latency_relay: %s" % message, file=sys.stderr, flush=True)

    async def start(self) -> None:
        if not self.stalls_paused:
            self.stalls_on()
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

        direction = DIRECTIONS[0] if upstream else DIRECTIONS[1]

        async def write_side() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                now = loop.time()
                held = self.hold_until(route, direction, now) - now
                if held > 0:  # a stall: nothing passes this way until it ends
                    route.held_chunks += 1
                    await asyncio.sleep(held)
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

    def totals(self, now: Optional[float] = None) -> dict[str, Any]:
        out = {}
        for r in self.routes:
            out[r.name] = {"delay_ms": r.delay_ms, "jitter_ms": r.jitter_ms, "connections": r.connections,
                           "bytes_up": r.bytes_up, "bytes_down": r.bytes_down, "errors": r.errors}
            if r.stall.probability > 0:
                stalls = {}
                if now is not None:
                    self._draw_all(now)
                for direction, schedule in sorted(r.schedules.items()):
                    stalls[direction] = {"stalls": schedule.stalls, "stalled_ms": round(schedule.stalled_ms)}
                out[r.name].update({"stall": {"probability": r.stall.probability, "every_ms": r.stall.every_ms,
                                              "ms": [r.stall.min_ms, r.stall.max_ms],
                                              "direction": r.stall.direction},
                                    "stalls": stalls, "held_chunks": r.held_chunks})
        return out


def describe(route: Route) -> str:
    text = "delay %.0f +- %.0f ms per round trip" % (route.delay_ms, route.jitter_ms)
    if route.stall.probability > 0:
        length = "%.0f" % route.stall.min_ms if route.stall.min_ms == route.stall.max_ms else \
            "%.0f-%.0f" % (route.stall.min_ms, route.stall.max_ms)
        text += ", bad link: %s ms stalls (%s) with p=%g every %.0f ms" % (
            length, route.stall.direction, route.stall.probability, route.stall.every_ms)
    return text


async def run(routes: list[Route], max_seconds: float, seed: Optional[int] = None, verbose: bool = False,
              stalls_paused: bool = False) -> Relay:
    relay = Relay(routes, seed=seed, verbose=verbose, stalls_paused=stalls_paused)
    await relay.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers = [(signal.SIGINT, stop.set), (signal.SIGTERM, stop.set),
                (signal.SIGUSR1, relay.stalls_on), (signal.SIGUSR2, relay.stalls_off)]
    for sig, handler in handlers:
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    for route in routes:
        print("latency_relay: listening %s, %s" % (route.name, describe(route)), file=sys.stderr, flush=True)
    if any(r.stall.probability > 0 for r in routes):
        print("latency_relay: bad link %s (SIGUSR1: on, SIGUSR2: off)" % ("off" if stalls_paused else "on"),
              file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except asyncio.TimeoutError:
        pass
    totals = relay.totals(loop.time())
    await relay.stop()
    print(json.dumps({"relay_seconds": round(time.monotonic() - started, 1), "bad_link_switches_on":
                      relay.bad_link_switches, "routes": totals}), file=sys.stderr, flush=True)
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
    parser.add_argument("--seed", type=int, help="random seed for the jitter and the stall schedule")
    bad = parser.add_argument_group("bad link (stalls, as bursts of TCP retransmission make)")
    bad.add_argument("--stall-probability", type=float, default=0.0,
                     help="chance that a stall starts in each slot, per route and direction (default 0: off)")
    bad.add_argument("--stall-every-ms", type=float, default=1000.0, help="slot length, ms (default 1000)")
    bad.add_argument("--stall-ms", type=float, default=0.0, help="stall length, or the shortest one, ms")
    bad.add_argument("--stall-max-ms", type=float, help="the longest stall, ms (default: --stall-ms)")
    bad.add_argument("--stall-direction", choices=["up", "down", "both"], default="both",
                     help="which way stalls hold traffic: up (client -> target), down, or both (default)")
    bad.add_argument("--stalls-paused", action="store_true",
                     help="start with the bad link off until SIGUSR1")
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
        asyncio.run(run(routes, args.max_seconds, seed=args.seed, verbose=args.verbose,
                        stalls_paused=args.stalls_paused))
    except OSError as exc:  # cannot bind
        print("latency_relay: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
