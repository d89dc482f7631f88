"""bench/latency_relay.py against real local sockets: the added RTT, byte order, EOF,
TLS pass-through (and why etcd_rtt times the TLS round trip, not connect), bounds."""
from __future__ import annotations

import asyncio
import json
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import write_self_signed

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import latency_relay  # noqa: E402

DELAY, JITTER = 40.0, 10.0


class EchoServer:
    """Blocking echo server on loopback; optional TLS; each connection in a thread."""

    def __init__(self, context: ssl.SSLContext | None = None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.context = context
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


class RelayThread:
    """The relay's own asyncio code on a background event loop."""

    def __init__(self, target_port: int, delay: float = DELAY, jitter: float = JITTER,
                 stall: latency_relay.StallSpec | None = None, seed: int = 7):
        self.route = latency_relay.Route("127.0.0.1", 0, "127.0.0.1", target_port, delay, jitter,
                                         stall or latency_relay.StallSpec())
        self.relay = latency_relay.Relay([self.route], seed=seed)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.relay.start(), self.loop).result(5)
        self.port = self.route.listen_port

    def close(self):
        asyncio.run_coroutine_threadsafe(self.relay.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def relay(echo):
    r = RelayThread(echo.port)
    yield r
    r.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_round_trip_gains_about_the_delay(echo, relay):
    direct, relayed = [], []
    for port, into in ((echo.port, direct), (relay.port, relayed)):
        with connect(port) as sock:
            for i in range(25):
                msg = b"ping %02d" % i
                start = time.perf_counter()
                sock.sendall(msg)
                assert recv_exactly(sock, len(msg)) == msg
                into.append((time.perf_counter() - start) * 1000)
    added = statistics.median(relayed) - statistics.median(direct)
    # The median bounds the relay's delay from above; single round trips are not bounded,
    # because on a busy machine (CI, a bench beside the tests) scheduling adds its own stalls.
    assert DELAY - 6 <= added <= DELAY + 30, (direct, relayed)
    # Each direction holds D/2 +- J/2: no round trip is faster than D - J.
    assert min(relayed) >= DELAY - JITTER - 1
    assert statistics.pstdev(relayed) > 0.5  # the jitter is there


def test_bytes_keep_their_order_and_the_link_is_not_throttled(relay):
    payload = b"".join(b"%08d" % i for i in range(100_000))  # 800 kB in many chunks
    received = bytearray()
    with connect(relay.port) as sock:
        def reader():
            while len(received) < len(payload):
                chunk = sock.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

        thread = threading.Thread(target=reader)
        thread.start()
        start = time.perf_counter()
        for offset in range(0, len(payload), 1000):
            sock.sendall(payload[offset:offset + 1000])
        thread.join(20)
        elapsed = time.perf_counter() - start
    assert bytes(received) == payload
    # Chunks are pipelined, not sent one delay apart (800 writes x 20 ms would be 16 s).
    assert elapsed < 5


def test_eof_is_forwarded_after_the_data(relay):
    with connect(relay.port) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)  # half-close: the echo server answers, then closes
        assert recv_exactly(sock, 10) == b"last words"
        assert sock.recv(10) == b""
    time.sleep(0.1)
    totals = relay.relay.totals()[relay.route.name]
    assert totals["connections"] == 1 and totals["bytes_up"] == totals["bytes_down"] == 10


def test_unreachable_target_closes_the_client():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()
    r = RelayThread(dead)
    try:
        with connect(r.port) as client:
            assert client.recv(10) == b""
        assert r.relay.totals()[r.route.name]["errors"] == 1
    finally:
        r.close()


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    pytest.importorskip("cryptography")
    crt, pem = write_self_signed(tmp_path_factory.mktemp("relay-pki"), "relay-test", "server")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(crt), str(pem))
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(str(crt))
    return server, client


def test_tls_passes_through_untouched(tls_pair):
    server_ctx, client_ctx = tls_pair
    server = EchoServer(server_ctx)
    r = RelayThread(server.port)
    try:
        with client_ctx.wrap_socket(connect(r.port), server_hostname="127.0.0.1") as tls:
            # The certificate verifies end to end: the relay never terminates TLS.
            assert tls.getpeercert()["subject"] == ((("commonName", "relay-test"),),)
            tls.sendall(b"through the relay")
            assert recv_exactly(tls, 17) == b"through the relay"
    finally:
        r.close()
        server.close()


def test_etcd_rtt_sees_the_relay_only_in_the_tls_round_trip(tls_pair, plugin_loader):
    pytest.importorskip("ansible.module_utils.basic")
    rtt = plugin_loader("modules/etcd_rtt.py", "etcd_rtt_module")
    server = EchoServer(tls_pair[0])
    r = RelayThread(server.port)
    try:
        tls = rtt.measure_peer("m2", "127.0.0.1", r.port, samples=8, interval_ms=1, timeout=2)
        tcp = rtt.measure_peer("m2", "127.0.0.1", r.port, samples=8, interval_ms=1, timeout=2, method="tcp")
    finally:
        r.close()
        server.close()
    assert tls["method"] == "tls" and tls["count"] == 8
    assert DELAY - JITTER - 1 <= tls["median"] <= DELAY + 25
    assert tcp["median"] < 10  # the relay accepts the TCP connection itself


def test_cli_is_bounded_and_reports_totals(echo):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    spec = json.dumps([{"listen": "127.0.0.1:%d" % port, "target": "127.0.0.1:%d" % echo.port,
                        "delay_ms": 20, "jitter_ms": 4}])
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(BENCH / "latency_relay.py"), "--spec", spec, "--max-seconds", "1.5"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                client = connect(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "relay never listened"
                time.sleep(0.05)
        with client:
            client.sendall(b"hi")
            assert recv_exactly(client, 2) == b"hi"
            # Still open when the time is up: the relay closes it and exits.
            assert client.recv(10) == b""
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert time.monotonic() - started < 6
    totals = json.loads(err.strip().splitlines()[-1])
    route = totals["routes"]["127.0.0.1:%d->127.0.0.1:%d" % (port, echo.port)]
    assert route["connections"] == 1 and route["bytes_up"] == 2 and route["delay_ms"] == 20


@pytest.mark.parametrize("argv, words", [
    (["--listen", "127.0.0.1:1", "--target", "8.8.8.8:53"], "outside the allowed networks"),
    (["--listen", "0.0.0.0:12381", "--target", "127.0.0.1:2380"], "outside the allowed networks"),
    (["--listen", "127.0.0.1:1", "--target", "example.com:80"], "not a host name"),
    (["--listen", "127.0.0.1:1"], "one --target for every --listen"),
    ([], "nothing to relay"),
    (["--listen", "127.0.0.1:1", "--target", "127.0.0.1:2", "--jitter-ms", "100"], "jitter"),
])
def test_cli_refuses_bad_routes(argv, words, capsys):
    assert latency_relay.main(argv + ["--max-seconds", "1"]) == 2
    assert words in capsys.readouterr().err


def test_lab_addresses_are_allowed_by_default():
    args = latency_relay.parse_args(["--listen", "172.31.240.1:12381", "--target", "172.31.240.11:2380",
                                     "--delay-ms", "40", "--jitter-ms", "10", "--max-seconds", "5"])
    (route,) = latency_relay.build_routes(args)
    assert (route.listen_host, route.listen_port, route.target_host, route.target_port) == (
        "172.31.240.1", 12381, "172.31.240.11", 2380)
    assert all(0.015 <= route.one_way_delay(latency_relay.random.Random(n)) <= 0.025 for n in range(200))



# --- bad-link mode: stalls ---------------------------------------------------------------

def windows(spec, seed="1/0/down", until=60.0):
    """The stall windows a schedule draws over `until` seconds from epoch 0."""
    schedule = latency_relay.StallSchedule(spec, latency_relay.random.Random(seed), 0.0)
    schedule.release(until)
    return schedule


def test_stall_schedule_is_deterministic_and_follows_the_spec():
    spec = latency_relay.StallSpec(probability=0.2, every_ms=500, min_ms=300, max_ms=900)
    a, b = windows(spec), windows(spec)
    assert (a.stalls, a.stalled_ms) == (b.stalls, b.stalled_ms) and a.stalls > 0
    assert windows(spec, seed="1/0/up").stalled_ms != a.stalled_ms  # directions draw apart
    assert 0.1 * 120 <= a.stalls <= 0.3 * 120  # about p x slots
    assert 300 * a.stalls <= a.stalled_ms <= 900 * a.stalls
    assert windows(latency_relay.StallSpec()).stalls == 0  # probability 0: a clean link


def test_release_holds_until_the_stall_ends_and_chains_overlapping_stalls():
    # Nearly every 1 s slot starts a 1.5 s stall: they overlap and chain, within a bound.
    spec = latency_relay.StallSpec(probability=0.999, every_ms=1000, min_ms=1500, max_ms=1500)
    schedule = latency_relay.StallSchedule(spec, latency_relay.random.Random(0), 10.0)
    assert schedule.release(9.0) == 9.0  # before the epoch: nothing drawn yet
    assert 12.0 <= schedule.release(10.2) <= 10.2 + latency_relay.MAX_STALL_MS / 1000.0
    spec = latency_relay.StallSpec(probability=1.0, every_ms=1000, min_ms=400, max_ms=400)
    schedule = latency_relay.StallSchedule(spec, latency_relay.random.Random(0), 0.0)
    assert schedule.release(0.1) == pytest.approx(0.4)
    assert schedule.release(0.5) == 0.5  # clear between stalls
    assert schedule.release(1.0) == pytest.approx(1.4)
    assert (schedule.stalls, round(schedule.stalled_ms)) == (2, 800)


@pytest.mark.parametrize("kwargs, words", [
    ({"probability": 1.5, "max_ms": 10}, "between 0 and 1"),
    ({"probability": 0.1, "every_ms": 0, "max_ms": 10}, "positive"),
    ({"probability": 0.1, "min_ms": 20, "max_ms": 10}, "stall_ms <= stall_max_ms"),
    ({"probability": 0.1, "max_ms": 120000}, "stall_max_ms"),
    ({"probability": 0.1, "max_ms": 10, "direction": "sideways"}, "up, down or both"),
    ({"probability": 0.1}, "needs stall_ms"),
    ({"probability": 1.0, "every_ms": 500, "min_ms": 500, "max_ms": 500}, "never clear"),
])
def test_stall_spec_refuses_bad_values(kwargs, words):
    with pytest.raises(ValueError, match=words):
        latency_relay.StallSpec(**kwargs)


def test_stalls_come_from_flags_and_per_spec_entry():
    spec = json.dumps([
        {"listen": "127.0.0.1:1", "target": "127.0.0.1:2"},
        {"listen": "127.0.0.1:3", "target": "127.0.0.1:4", "stall_ms": 300, "stall_direction": "up"},
        {"listen": "127.0.0.1:5", "target": "127.0.0.1:6", "stall_probability": 0},
    ])
    args = latency_relay.parse_args(["--spec", spec, "--max-seconds", "1", "--stall-probability", "0.05",
                                     "--stall-ms", "1200", "--stall-max-ms", "2500", "--stall-direction", "down"])
    flags, own, clean = (r.stall for r in latency_relay.build_routes(args))
    assert (flags.probability, flags.min_ms, flags.max_ms, flags.direction) == (0.05, 1200, 2500, "down")
    assert flags.applies("down") and not flags.applies("up")
    assert (own.min_ms, own.max_ms, own.direction) == (300, 300, "up")  # its own length, fixed
    assert not clean.applies("up") and not clean.applies("down")
    assert latency_relay.main(["--listen", "127.0.0.1:1", "--target", "127.0.0.1:2", "--max-seconds", "1",
                               "--stall-probability", "0.5"]) == 2  # a probability without a length


def ping_times(port, count, gap, size=8):
    """Round trips (ms) of `count` small echoes, `gap` seconds apart; checks every byte."""
    out = []
    with connect(port) as sock:
        for i in range(count):
            msg = (b"%0" + str(size).encode() + b"d") % i
            start = time.perf_counter()
            sock.sendall(msg)
            assert recv_exactly(sock, size) == msg  # in order, nothing lost
            out.append((time.perf_counter() - start) * 1000)
            time.sleep(gap)
    return out


@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_stall_holds_one_direction_then_delivers_in_order(echo, direction):
    # Each 500 ms slot begins with a 300 ms stall: an echo that meets one waits it out.
    r = RelayThread(echo.port, 0.0, 0.0, latency_relay.StallSpec(1.0, 500, 300, 300, direction), seed=3)
    try:
        times = ping_times(r.port, 24, 0.05)
        totals = r.relay.totals(r.loop.time())[r.route.name]
    finally:
        r.close()
    assert min(times) < 20 and max(times) > 150, times  # clear between stalls, held inside one
    assert totals["held_chunks"] > 0 and totals["stalls"][direction]["stalls"] >= 2
    assert set(totals["stalls"]) == {direction}


def test_cli_bad_link_switches_on_and_off_by_signal(echo):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, str(BENCH / "latency_relay.py"), "--listen", "127.0.0.1:%d" % port,
                             "--target", "127.0.0.1:%d" % echo.port, "--delay-ms", "0", "--seed", "5",
                             "--stall-probability", "1", "--stall-every-ms", "400", "--stall-ms", "250",
                             "--stalls-paused", "--max-seconds", "20"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                connect(port).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "relay never listened"
                time.sleep(0.05)
        paused = ping_times(port, 8, 0.05)
        proc.send_signal(latency_relay.signal.SIGUSR1)
        time.sleep(0.2)
        bad = ping_times(port, 12, 0.05)
        proc.send_signal(latency_relay.signal.SIGUSR2)
        time.sleep(0.3)
        clear = ping_times(port, 8, 0.05)
        proc.send_signal(latency_relay.signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert max(paused) < 50 and max(clear) < 50, (paused, clear)
    assert max(bad) > 100, bad
    assert "bad link off (SIGUSR1: on, SIGUSR2: off)" in err and "250 ms stalls (both)" in err
    totals = json.loads(err.strip().splitlines()[-1])
    assert totals["bad_link_switches_on"] == 1
    stalls = totals["routes"]["127.0.0.1:%d->127.0.0.1:%d" % (port, echo.port)]["stalls"]
    assert set(stalls) == {"up", "down"} and all(s["stalls"] >= 2 for s in stalls.values())


def test_etcd_rtt_sees_the_stalls_in_a_long_probe(tls_pair, plugin_loader):
    pytest.importorskip("ansible.module_utils.basic")
    rtt = plugin_loader("modules/etcd_rtt.py", "etcd_rtt_module")
    server = EchoServer(tls_pair[0])
    r = RelayThread(server.port, 10.0, 0.0, latency_relay.StallSpec(0.5, 300, 400, 400, "down"), seed=11)
    try:
        out = rtt.measure_peer("m2", "127.0.0.1", r.port, samples=3, interval_ms=20, timeout=2,
                               duration=2.0)
    finally:
        r.close()
        server.close()
    assert out["method"] == "tls" and out["window_s"] >= 1.9 and out["count"] > 10
    assert out["median"] < 100 <= 200 < out["longest"] <= 450, out
