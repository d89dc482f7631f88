# -*- coding: utf-8 -*-
"""Ordering rules for operations that touch members one at a time."""
from __future__ import annotations

from typing import Any, Mapping, Sequence


def rolling_order(
    hosts: Sequence[str], names: Mapping[str, str], status: Mapping[str, Any]
) -> list[str]:
    """Followers first in the given order, the current leader last.

    Restarting the leader last means one leader election per pass instead of
    one per restarted member, and the leader is only touched once every
    follower has proven it rejoins.
    """
    leader = (status.get("leader") or {}).get("name")
    followers = [host for host in hosts if names.get(host) != leader]
    leaders = [host for host in hosts if names.get(host) == leader]
    return followers + leaders
