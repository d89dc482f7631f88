# -*- coding: utf-8 -*-
"""Raft timeouts from measured member-to-member round-trip times.

Rules (etcd's tuning guide, https://etcd.io/docs/v3.5/tuning/, and its hard limits):

* heartbeat interval: about the largest member-to-member RTT, never below etcd's
  default of 100 ms. The largest pairwise *median* RTT is rounded up to a 50 ms step.
* election timeout: at least 10 x the RTT (the largest pairwise *p99* RTT, so the
  network's variance is covered), at least 5 x the heartbeat (etcd refuses less),
  at least 2 x the longest round trip any pair saw (a stall of the link: see below) and
  never below etcd's default of 1000 ms; rounded up to a 500 ms step.
* stalls: on a link with bursts of loss, TCP holds everything behind a lost segment
  while it retransmits (200, 400, 800 ms, ...), so no heartbeat arrives for hundreds of
  milliseconds to seconds, whatever the median. A follower that hears nothing for the
  election timeout calls an election, so the timeout must outlast the stalls. A probe
  sample that falls into a stall takes as long as the rest of it, so a long probe
  window's longest sample shows the stalls (a little short: a sample rarely starts right
  at a stall's start); twice that covers the heartbeat before the stall and the stalls
  the window missed. For a healthy link 2 x the longest is far below 10 x the p99.
* etcd refuses an election timeout above 50000 ms: such a network is refused here,
  naming the pair of members that is too far apart.

The coarse steps keep re-runs stable: a few milliseconds of noise between two
measurements must not change the configuration and restart every member.

Pure standard library, importable from modules (ansible.module_utils.etcd_tuning),
from controller-side filters and from plain pytest.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Mapping

DEFAULT_HEARTBEAT_MS = 100
DEFAULT_ELECTION_MS = 1000
MAX_ELECTION_MS = 50000
HEARTBEAT_STEP_MS = 50
ELECTION_STEP_MS = 500
RTT_FACTOR = 10  # election >= 10 x RTT
HEARTBEAT_FACTOR = 5  # election >= 5 x heartbeat (etcd refuses less)
STALL_FACTOR = 2  # election >= 2 x the longest round trip seen (outlast the link's stalls)
# A sample this far above the median is a stall (a TCP retransmission: Linux waits at least
# 200 ms before it resends), not jitter: it counts for the longest round trip, not the p99.
STALL_EXTRA_MS = 200
STALL_MEDIAN_FACTOR = 2


def _round_up(value: float, step: int) -> int:
    """Smallest multiple of step that is >= value (0 stays 0)."""
    if value <= 0:
        return 0
    return int(math.ceil(round(value, 6) / step) * step)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear-interpolation percentile (numpy's default) of an ascending list."""
    if not sorted_values:
        raise ValueError("no samples")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    position = fraction * (len(sorted_values) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(sorted_values) - 1)
    weight = position - low
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * weight)


def stall_threshold(median_ms: float) -> float:
    """Samples above this are stalls of the link, not jitter (see STALL_EXTRA_MS)."""
    return max(median_ms + STALL_EXTRA_MS, STALL_MEDIAN_FACTOR * median_ms)


def summarize(samples_ms: Iterable[float]) -> dict[str, Any]:
    """count, min, median, p99, max and stalls (milliseconds, 3 decimals) of RTT samples.

    stalls counts the samples above stall_threshold(median); the p99 leaves them out
    (it measures the link's jitter; the max still shows the longest stall). An empty
    list gives count 0 and None for every statistic.
    """
    values = sorted(float(v) for v in samples_ms)
    for value in values:
        if math.isnan(value) or value < 0:
            raise ValueError("RTT samples must be non-negative milliseconds, got %r" % (value,))
    if not values:
        return {"count": 0, "min": None, "median": None, "p99": None, "max": None, "stalls": 0}
    median = float(statistics.median(values))
    limit = stall_threshold(median)
    clean = [v for v in values if v <= limit]  # never empty: the median itself is below
    return {
        "count": len(values),
        "min": round(values[0], 3),
        "median": round(median, 3),
        "p99": round(percentile(clean, 0.99), 3),
        "max": round(values[-1], 3),
        "stalls": len(values) - len(clean),
    }


def _pairs(matrix: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[tuple[str, str, float, float, float]]:
    """(src, dst, median, p99, longest) for every measured pair; refuses holes and junk.

    longest: the cell's 'longest' (etcd_rtt counts a timed-out sample as the timeout),
    else its 'max', never below the p99.
    """
    pairs = []
    if not isinstance(matrix, Mapping):
        raise ValueError("the RTT matrix must be a mapping {source: {destination: {median, p99}}}")
    for src in sorted(matrix):
        row = matrix[src]
        if not isinstance(row, Mapping):
            raise ValueError("RTT matrix row %r must be a mapping of destinations" % (src,))
        for dst in sorted(row):
            if dst == src:
                continue
            cell = row[dst]
            try:
                median = float(cell["median"])
                p99 = float(cell["p99"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    "no RTT measured from %s to %s (got %r): every member must reach every other "
                    "member on its peer address" % (src, dst, cell)
                )
            if math.isnan(median) or math.isnan(p99) or median < 0 or p99 < 0:
                raise ValueError("RTT from %s to %s is not a valid measurement: %r" % (src, dst, cell))
            p99 = max(p99, median)
            longest = p99
            for key in ("longest", "max"):
                try:
                    value = float(cell.get(key))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                if not math.isnan(value):
                    longest = max(p99, value)
                    break
            pairs.append((str(src), str(dst), median, p99, longest))
    if not pairs:
        raise ValueError("the RTT matrix holds no member-to-member measurement: measure with at least 2 members")
    return pairs


def compute_timeouts(matrix: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Heartbeat interval and election timeout (ms) for every member, and why.

    matrix: {src_name: {dst_name: {"median": ms, "p99": ms, ...}}}, one entry per
    measured direction. Raises ValueError when the matrix is empty or malformed, or
    when the network needs an election timeout above etcd's 50000 ms limit.
    """
    pairs = _pairs(matrix)
    med_src, med_dst, max_median, _p99, _longest = max(pairs, key=lambda p: (p[2], p[3]))
    worst_src, worst_dst, worst_median, max_p99, _longest = max(pairs, key=lambda p: (p[3], p[2]))
    stall_src, stall_dst, _median, _p99, longest = max(pairs, key=lambda p: (p[4], p[3]))
    worst_pair = "%s -> %s" % (worst_src, worst_dst)
    reasons = []

    rtt_heartbeat = _round_up(max_median, HEARTBEAT_STEP_MS)
    heartbeat = max(DEFAULT_HEARTBEAT_MS, rtt_heartbeat)
    if heartbeat == DEFAULT_HEARTBEAT_MS and rtt_heartbeat < DEFAULT_HEARTBEAT_MS:
        reasons.append(
            "heartbeat %d ms: the largest median RTT (%.1f ms, %s -> %s) is below etcd's default, "
            "and the heartbeat never goes below the default of %d ms"
            % (heartbeat, max_median, med_src, med_dst, DEFAULT_HEARTBEAT_MS)
        )
    else:
        reasons.append(
            "heartbeat %d ms: about the largest median RTT (%.1f ms, %s -> %s), rounded up to a %d ms step"
            % (heartbeat, max_median, med_src, med_dst, HEARTBEAT_STEP_MS)
        )

    candidates = [
        (RTT_FACTOR * max_p99, "10 x the largest p99 RTT (%.1f ms, %s)" % (max_p99, worst_pair)),
        (STALL_FACTOR * longest, "2 x the longest round trip seen, a stall of the link (%.1f ms, %s -> %s)"
         % (longest, stall_src, stall_dst)),
        (HEARTBEAT_FACTOR * heartbeat, "5 x the heartbeat (%d ms)" % heartbeat),
        (DEFAULT_ELECTION_MS, "etcd's default"),
    ]
    floor_ms, why = max(candidates, key=lambda c: c[0])
    election = _round_up(floor_ms, ELECTION_STEP_MS)
    if election > MAX_ELECTION_MS and floor_ms == STALL_FACTOR * longest and longest > max_p99:
        raise ValueError(
            "the link from %s to %s stalled for %.1f ms (p99 %.1f ms): outlasting such stalls needs an "
            "election timeout of %d ms or more (2 x the stall), above etcd's limit of %d ms. Fix the network "
            "path between them (loss bursts, a congested or flapping link), or measure again if it was a one-off"
            % (stall_src, stall_dst, longest, max_p99, election, MAX_ELECTION_MS)
        )
    if election > MAX_ELECTION_MS:
        raise ValueError(
            "members %s and %s are too far apart for etcd: their p99 round trip of %.1f ms (median %.1f ms) "
            "needs an election timeout of %d ms or more (10 x RTT), above etcd's limit of %d ms. "
            "Place the members closer together (p99 RTT under %d ms) or fix the network path between them"
            % (worst_src, worst_dst, max_p99, worst_median, election, MAX_ELECTION_MS,
               MAX_ELECTION_MS // RTT_FACTOR)
        )
    if floor_ms == DEFAULT_ELECTION_MS:
        reasons.append(
            "election timeout %d ms: etcd's default already exceeds 10 x the largest p99 RTT (%.0f ms), "
            "2 x the longest round trip (%.0f ms) and 5 x the heartbeat (%d ms), and it never goes below the default"
            % (election, RTT_FACTOR * max_p99, STALL_FACTOR * longest, HEARTBEAT_FACTOR * heartbeat)
        )
    else:
        reasons.append(
            "election timeout %d ms: %s = %.0f ms is the largest lower bound, rounded up to a %d ms step"
            % (election, why, floor_ms, ELECTION_STEP_MS)
        )
    reasons.append(
        "the same values apply to every member, as etcd requires; an explicit etcd_heartbeat_interval "
        "or etcd_election_timeout overrides them"
    )
    return {
        "heartbeat_interval": heartbeat,
        "election_timeout": election,
        "max_median_rtt_ms": round(max_median, 3),
        "max_p99_rtt_ms": round(max_p99, 3),
        "longest_rtt_ms": round(longest, 3),
        "worst_pair": worst_pair,
        "stall_pair": "%s -> %s" % (stall_src, stall_dst),
        "reasons": reasons,
    }


def _cell(value: Any) -> str:
    try:
        return "%.1f" % float(value)
    except (TypeError, ValueError):
        return "?"


def format_matrix(matrix: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Fixed-width table: one row per source, one column per destination, 'median / p99 /
    longest' in ms (the longest where the cell has one: a stall shows there)."""
    names = sorted(set(matrix) | {dst for row in matrix.values() for dst in row})
    title = "RTT ms, median / p99 / longest (row -> column)"
    cells = {}
    for src in names:
        for dst in names:
            if src == dst:
                text = "-"
            else:
                entry = (matrix.get(src) or {}).get(dst)
                if not entry:
                    text = "n/a"
                else:
                    text = "%s / %s" % (_cell(entry.get("median")), _cell(entry.get("p99")))
                    longest = entry.get("longest", entry.get("max"))
                    if longest is not None:
                        text += " / " + _cell(longest)
            cells[(src, dst)] = text
    first = max([len(title)] + [len(n) for n in names])
    width = max([len(n) for n in names] + [len(t) for t in cells.values()] + [1])
    lines = [title.ljust(first) + "".join("  " + n.rjust(width) for n in names)]
    for src in names:
        lines.append(src.ljust(first) + "".join("  " + cells[(src, dst)].rjust(width) for dst in names))
    return "\n".join(line.rstrip() for line in lines)
