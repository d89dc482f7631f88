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

    def __init__(self, target_port: int, delay: float = DELAY, jitter: float = JITTER):
        self.route = latency_relay.Route("127.0.0.1", 0, "127.0.0.1", target_port, delay, jitter)
        self.relay = latency_relay.Relay([self.route], seed=7)
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
    assert DELAY - 6 <= added <= DELAY + 12, (direct, relayed)
    # Each direction holds D/2 +- J/2: a round trip stays within D +- J (plus scheduling).
    assert min(relayed) >= DELAY - JITTER - 1
    assert max(relayed) <= DELAY + JITTER + 40
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

