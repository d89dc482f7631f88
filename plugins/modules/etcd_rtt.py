#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: measure round-trip times from this member to its peers (read-only)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_rtt
short_description: Measure round-trip times from this host to etcd peers
description:
  - Runs on a member and measures the round-trip time (RTT) to every peer in O(peers)
    over the peer network, in rounds of one sample per peer, one peer after the other,
    O(interval_ms) apart, for O(samples) rounds and at least O(duration) seconds.
  - A long O(duration) is what sees a bad link. Bursts of loss stall a TCP connection for
    hundreds of milliseconds to seconds while it retransmits, and such stalls, not the
    median, are what make etcd elect a new leader. A sample that falls into a stall takes
    as long as the rest of the stall, so RV(peers[].longest) over a long window shows it.
  - Returns per-peer summaries (count, min, median, p99, max, longest in milliseconds) and
    the raw samples, for the C(etcd_rtt_matrix) and C(etcd_timeouts) filters, which pick
    the heartbeat interval and election timeout from the slowest pair of members.
  - With O(method=tcp) a sample is the time the TCP connect takes, one round trip
    (SYN, SYN-ACK).
  - With O(method=tls) the TCP connection is opened first, untimed; the sample is the time
    from sending a TLS ClientHello to the first bytes of the server's answer (ServerHello,
    or an alert), one round trip at the application level. No certificate is verified and
    none is sent, so a peer port that demands client certificates (etcd's) still answers
    within that round trip; the handshake is then abandoned. This is what sees the delay
    of a relay or proxy in front of the peer port, which accepts TCP connections itself.
  - O(method=auto) probes each peer once and uses C(tls) when the port answers a
    ClientHello with a TLS record (an etcd peer port), else C(tcp) (for example port 22
    before etcd runs). A port that stays silent for O(timeout) counts as C(tcp), so keep
    O(timeout) well above the round trip.
  - Never changes anything; always reports RV(ignore:changed=false).
extends_documentation_fragment:
  - controlplane.etcd.read_only
version_added: "1.1.0"
author:
  - etcd toolkit maintainers (@controlplane-etcd)
options:
  peers:
    description:
      - The members to measure, each with its C(name) and the C(host) and C(port) peers dial
        (the host and port of the member's advertised peer URL).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Member name, used as the column of the RTT matrix.
        type: str
        required: true
      host:
        description: Address or host name to dial.
        type: str
        required: true
      port:
        description: TCP port to dial, usually the peer port 2380.
        type: int
        default: 2380
  samples:
    description:
      - Samples per peer at least (rounds). The p99 of 30 samples is close to the worst of them.
    type: int
    default: 30
  interval_ms:
    description: Pause between two rounds of samples, in milliseconds.
    type: int
    default: 20
  duration:
    description:
      - Keep taking rounds of samples until this many seconds have passed (and O(samples)
        rounds are done). V(0) takes just O(samples) rounds.
      - Stalls of a bad link are rare events; a window of a minute or more, with
        O(interval_ms) of a few hundred milliseconds, lets the probe meet them.
      - At most 3600.
    type: float
    default: 0
  timeout:
    description:
      - Seconds one sample (connect, or connect plus the TLS round trip) may take before it
        counts as an error.
    type: float
    default: 2
  method:
    description:
      - V(tcp) times TCP connect; V(tls) times the TLS ClientHello/ServerHello round trip;
        V(auto) picks V(tls) for a port that speaks TLS, else V(tcp).
    type: str
    choices: [auto, tcp, tls]
    default: auto
  source:
    description: Name of this member, returned as RV(source); defaults to the host name.
    type: str
  fail_on_unreachable:
    description: Fail when a peer yields no sample at all; the measurements are still returned.
    type: bool
    default: true
notes:
  - Every TLS sample is a connection the peer sees rejected before the handshake ends;
    etcd logs it as C(rejected connection) at warning level.
  - Samples are taken one at a time, so the measurement itself does not queue. It lasts
    about the longer of O(duration) and O(samples) x (O(interval_ms) + one RTT per peer).
  - Run it from every member against every other member; the heartbeat and election
    timeout must suit the slowest pair and be the same on every member.
requirements:
  - Python 3.9 or later on the managed host (standard library only)
"""

EXAMPLES = r"""
- name: Measure RTT from this member to every other member's peer port
  controlplane.etcd.etcd_rtt:
    source: "{{ etcd_member_name }}"
    peers:
      - {name: etcd-2, host: 10.0.0.2, port: 2380}
      - {name: etcd-3, host: 10.0.0.3, port: 2380}
  register: rtt

- name: Before etcd runs, time TCP connects to SSH instead
  controlplane.etcd.etcd_rtt:
    peers: [{name: etcd-2, host: 10.0.0.2, port: 22}]
    method: tcp
    samples: 50
    interval_ms: 10

- name: Pick the heartbeat and election timeout from every member's measurements
  ansible.builtin.set_fact:
    etcd_rtt_tuning: >-
      {{ dict(ansible_play_hosts | map('extract', hostvars, 'etcd_member_name')
              | zip(ansible_play_hosts | map('extract', hostvars, 'rtt')))
         | etcd_rtt_matrix | etcd_timeouts }}
  run_once: true
"""

RETURN = r"""
source:
  description: Name of the measuring member (O(source), else the host name).
  returned: always
  type: str
  sample: etcd-1
peers:
  description: One entry per peer, in O(peers) order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Peer member name.
      type: str
      sample: etcd-2
    host:
      description: Address dialled.
      type: str
      sample: 10.0.0.2
    port:
      description: Port dialled.
      type: int
      sample: 2380
    method:
      description: Method used, V(tcp) or V(tls) (V(auto) resolved).
      type: str
      sample: tls
    count:
      description: Successful samples.
      type: int
      sample: 30
    min:
      description: Fastest sample in milliseconds (null without samples).
      type: float
      sample: 0.41
    median:
      description: Median sample in milliseconds (null without samples).
      type: float
      sample: 0.52
    p99:
      description:
        - 99th percentile in milliseconds, linear interpolation, of the samples that are not
          stalls (null without samples). It measures the link's jitter.
      type: float
      sample: 0.97
    stalls:
      description:
        - Samples above the larger of median + 200 ms (Linux's shortest TCP retransmission
          timeout) and 2 x the median. They are stalls of the link, not jitter;
          RV(peers[].max) and RV(peers[].longest) show them, RV(peers[].p99) leaves them out.
      type: int
      sample: 0
    max:
      description: Slowest sample in milliseconds (null without samples).
      type: float
      sample: 1.02
    longest:
      description:
        - The longest round trip seen in milliseconds; RV(peers[].max), or O(timeout) when a
          sample timed out (the round trip took at least that long). Null without samples.
      type: float
      sample: 1.02
    timeouts:
      description: Samples that timed out (also listed in RV(peers[].errors)).
      type: int
      sample: 0
    window_s:
      description: Seconds from the first sample to the last.
      type: float
      sample: 60.2
    samples:
      description: Every successful sample in milliseconds, in the order taken.
      type: list
      elements: float
    errors:
      description:
        - Failed samples, one message each (timeouts, refused connections); the first 20.
      type: list
      elements: str
      sample: ["10.0.0.2:2380: timed out"]
    error_count:
      description: Failed samples, all of them.
      type: int
      sample: 1
unreachable_peers:
  description: Names of peers that yielded no sample at all.
  returned: always
  type: list
  elements: str
  sample: []
"""

import socket
import ssl
import struct
import time
from typing import Any, Callable, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.controlplane.etcd.plugins.module_utils.etcd_tuning import summarize

# First bytes of a TLS record a server sends back: handshake (22) or alert (21), version 3.x.
_TLS_RECORD_TYPES = (0x15, 0x16)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _close(sock: socket.socket) -> None:
    try:
        # RST instead of a FIN handshake: no TIME_WAIT pile-up from many samples.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def client_hello() -> bytes:
    """A fresh TLS ClientHello (no verification, no client certificate), as wire bytes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = outgoing.read()
    if not data:  # pragma: no cover - OpenSSL always writes the hello first
        raise ssl.SSLError("could not build a TLS ClientHello")
    return data


def probe_tcp(host: str, port: int, timeout: float) -> float:
    """Milliseconds the TCP connect() took."""
    start = time.perf_counter()
    sock = _connect(host, port, timeout)
    elapsed = (time.perf_counter() - start) * 1000.0
    _close(sock)
    return elapsed


def _tls_first_bytes(host: str, port: int, timeout: float) -> tuple[float, bytes]:
    hello = client_hello()
    sock = _connect(host, port, timeout)
    try:
        deadline = time.perf_counter() + timeout
        start = time.perf_counter()
        sock.sendall(hello)
        sock.settimeout(max(0.001, deadline - time.perf_counter()))
        data = sock.recv(5)
        elapsed = (time.perf_counter() - start) * 1000.0
    finally:
        _close(sock)
    return elapsed, data


def probe_tls(host: str, port: int, timeout: float) -> float:
    """Milliseconds from sending a ClientHello to the server's first TLS bytes.

    The connection is opened beforehand and not timed. The server's first flight
    (ServerHello...) or an alert both end the sample, so a server demanding a client
    certificate, or one that rejects this hello, still gives one round trip.
    """
    elapsed, data = _tls_first_bytes(host, port, timeout)
    if not data:
        raise ConnectionError("%s:%d closed the connection without a TLS answer" % (host, port))
    if data[0] not in _TLS_RECORD_TYPES or (len(data) > 1 and data[1] != 0x03):
        raise ssl.SSLError("%s:%d does not speak TLS (answered %r)" % (host, port, data[:5]))
    return elapsed


def detect_method(host: str, port: int, timeout: float) -> str:
    """'tls' when the port answers a ClientHello with a TLS record, else 'tcp'.

    A server that talks first (SSH sends its banner on connect) or closes the
    connection counts as tcp. Connection errors propagate.
    """
    try:
        _elapsed, data = _tls_first_bytes(host, port, timeout)
    except socket.timeout:
        return "tcp"
    except (ConnectionResetError, BrokenPipeError):
        return "tcp"
    if data and data[0] in _TLS_RECORD_TYPES and (len(data) < 2 or data[1] == 0x03):
        return "tls"
    return "tcp"


PROBES: dict[str, Callable[[str, int, float], float]] = {"tcp": probe_tcp, "tls": probe_tls}


def _error_text(host: str, port: int, exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, socket.timeout):
        text = "timed out"
    return "%s:%d: %s" % (host, port, text)


MAX_DURATION_S = 3600
MAX_ERRORS_KEPT = 20


def measure_peers(
    peers: list[dict[str, Any]],
    samples: int = 30,
    interval_ms: int = 20,
    timeout: float = 2.0,
    method: str = "auto",
    duration: float = 0.0,
    sleep: Optional[Callable[[float], None]] = None,
    clock: Optional[Callable[[], float]] = None,
) -> list[dict[str, Any]]:
    """Measure every peer ({name, host, port}) in rounds; one summary per peer, in order.

    Each round takes one sample from each peer, one after the other; rounds are
    interval_ms apart and go on for `samples` rounds and at least `duration` seconds.
    """
    pause = sleep or time.sleep
    now = clock or time.monotonic
    states = []
    for peer in peers:
        state: dict[str, Any] = {"peer": peer, "method": method, "taken": [], "errors": [], "timeouts": 0}
        if method == "auto":
            try:
                state["method"] = detect_method(peer["host"], peer["port"], timeout)
            except (OSError, ssl.SSLError) as exc:
                state["errors"].append(_error_text(peer["host"], peer["port"], exc))
                state["method"], state["skip"] = "tcp", True
        states.append(state)
    started = now()
    rounds = 0
    first = last = None
    live = any(not state.get("skip") for state in states)  # no peer to sample: no window to wait out
    while live and (rounds < samples or now() - started < duration):
        if rounds:
            pause(interval_ms / 1000.0)
        for state in states:
            if state.get("skip"):
                continue
            host, port = state["peer"]["host"], state["peer"]["port"]
            first = now() if first is None else first
            try:
                state["taken"].append(round(PROBES[state["method"]](host, port, timeout), 3))
            except (OSError, ssl.SSLError) as exc:
                state["errors"].append(_error_text(host, port, exc))
                if isinstance(exc, socket.timeout):
                    state["timeouts"] += 1
            last = now()
        rounds += 1
    results = []
    for state in states:
        peer, taken = state["peer"], state["taken"]
        result: dict[str, Any] = {"name": peer["name"], "host": peer["host"], "port": peer["port"],
                                  "method": state["method"]}
        result.update(summarize(taken))
        # A timed-out sample is a round trip of at least the timeout: a stall the probe met.
        result["longest"] = None if not taken else \
            max(result["max"], round(timeout * 1000.0, 3) if state["timeouts"] else 0.0)
        result["timeouts"] = state["timeouts"]
        result["window_s"] = round((last - first) if first is not None and last is not None else 0.0, 1)
        result["samples"] = taken
        result["errors"] = state["errors"][:MAX_ERRORS_KEPT]
        result["error_count"] = len(state["errors"])
        results.append(result)
    return results


def measure_peer(
    name: str,
    host: str,
    port: int,
    samples: int = 30,
    interval_ms: int = 20,
    timeout: float = 2.0,
    method: str = "auto",
    sleep: Optional[Callable[[float], None]] = None,
    duration: float = 0.0,
) -> dict[str, Any]:
    """Measure one peer; returns its summary, raw samples and errors."""
    return measure_peers([{"name": name, "host": host, "port": port}], samples=samples, interval_ms=interval_ms,
                         timeout=timeout, method=method, duration=duration, sleep=sleep)[0]


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            peers=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    host=dict(type="str", required=True),
                    port=dict(type="int", default=2380),
                ),
            ),
            samples=dict(type="int", default=30),
            interval_ms=dict(type="int", default=20),
            duration=dict(type="float", default=0.0),
            timeout=dict(type="float", default=2.0),
            method=dict(type="str", default="auto", choices=["auto", "tcp", "tls"]),
            source=dict(type="str"),
            fail_on_unreachable=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["samples"] < 1:
        module.fail_json(msg="samples must be 1 or more")
    if p["interval_ms"] < 0:
        module.fail_json(msg="interval_ms must not be negative")
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be positive seconds")
    if not 0 <= p["duration"] <= MAX_DURATION_S:
        module.fail_json(msg="duration must be between 0 and %d seconds" % MAX_DURATION_S)
    for peer in p["peers"]:
        if not 0 < peer["port"] < 65536:
            module.fail_json(msg="peer %s: port %d is not a TCP port" % (peer["name"], peer["port"]))

    source = p["source"] or socket.gethostname()
    results = measure_peers(p["peers"], samples=p["samples"], interval_ms=p["interval_ms"], timeout=p["timeout"],
                            method=p["method"], duration=p["duration"])
    unreachable = [r["name"] for r in results if not r["count"]]
    if unreachable and p["fail_on_unreachable"]:
        module.fail_json(
            msg="no RTT sample from %s to %s: %s" % (
                source, ", ".join(unreachable),
                "; ".join(r["errors"][0] for r in results if not r["count"] and r["errors"])),
            changed=False, source=source, peers=results, unreachable_peers=unreachable,
        )
    # Not 'unreachable': Ansible reads that result key as the host itself being unreachable.
    module.exit_json(changed=False, source=source, peers=results, unreachable_peers=unreachable)


if __name__ == "__main__":
    main()
