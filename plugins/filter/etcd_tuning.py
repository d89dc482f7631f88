# -*- coding: utf-8 -*-
"""Filters that turn etcd_rtt measurements into Raft timeouts.

    etcd_rtt_matrix  {member: etcd_rtt result} (or a list of results with 'source')
                     -> {src: {dst: {median, p99, min, max, longest, stalls, timeouts,
                     window_s, count, method, host, port}}}
    etcd_timeouts    matrix -> {heartbeat_interval, election_timeout, max_median_rtt_ms,
                     max_p99_rtt_ms, longest_rtt_ms, worst_pair, stall_pair, reasons}
    etcd_rtt_table   matrix -> fixed-width median / p99 / longest table

The rules live in plugins/module_utils/etcd_tuning.py, shared with the etcd_rtt module.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.controlplane.etcd.plugins.module_utils import etcd_tuning as rules

_CELL_KEYS = ("median", "p99", "min", "max", "longest", "stalls", "timeouts", "window_s", "count", "method", "host",
              "port")


def _results_by_source(results: Any) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(results, Mapping):
        return [(str(name), result) for name, result in results.items()]
    if isinstance(results, (list, tuple)):
        pairs = []
        for result in results:
            if not isinstance(result, Mapping) or not result.get("source"):
                raise AnsibleFilterError(
                    "etcd_rtt_matrix: a list must hold etcd_rtt results that carry 'source'; "
                    "otherwise pass a dict {member name: result}"
                )
            pairs.append((str(result["source"]), result))
        return pairs
    raise AnsibleFilterError("etcd_rtt_matrix expects {member name: etcd_rtt result} or a list of results")


def etcd_rtt_matrix(results: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Build {src: {dst: summary}} from every member's etcd_rtt result."""
    matrix: dict[str, dict[str, dict[str, Any]]] = {}
    for source, result in _results_by_source(results):
        if not isinstance(result, Mapping):
            raise AnsibleFilterError("etcd_rtt_matrix: the result for %s is not a mapping" % source)
        if result.get("failed") or result.get("skipped"):
            raise AnsibleFilterError(
                "etcd_rtt_matrix: the measurement on %s did not run: %s"
                % (source, result.get("msg") or ("skipped" if result.get("skipped") else "failed"))
            )
        if source in matrix:
            raise AnsibleFilterError("etcd_rtt_matrix: member %s appears twice" % source)
        row = matrix[source] = {}
        for peer in result.get("peers") or []:
            dst = str(peer.get("name"))
            if dst == source:
                continue
            row[dst] = {key: peer.get(key) for key in _CELL_KEYS}
    return matrix


def etcd_timeouts(matrix: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Heartbeat interval and election timeout for the slowest pair, with reasons."""
    try:
        return rules.compute_timeouts(matrix)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def etcd_rtt_table(matrix: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    return rules.format_matrix(matrix)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "etcd_rtt_matrix": etcd_rtt_matrix,
            "etcd_timeouts": etcd_timeouts,
            "etcd_rtt_table": etcd_rtt_table,
        }
