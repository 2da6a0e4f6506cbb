"""When a replica publishes its status telemetry (node.status): the rule the replica
(nodes/replica.py) and the simulator (sim/lab.py) share, so a simulated run's record holds
the node.status events a real one does, at the same pace.

A status is published at most every STATUS_INTERVAL and only when it changed. Fields that
move at idle (a heartbeat sends a message and renews the lease) are volatile: a change only
there is published at most every IDLE_STATUS_INTERVAL. Every node.status goes into
events.jsonl, and an idle 3-node Raft lab otherwise wrote 2 MB of them a minute.
"""

from __future__ import annotations

from typing import Any

STATUS_INTERVAL = 0.05  # status telemetry at most this often, and only when it changed
IDLE_STATUS_INTERVAL = 2.0
VOLATILE_STATUS = frozenset({"counters", "lease_expiry", "lease_expiry_true", "fsync_ms",
                             "fsyncs"})  # fmt: skip

PUBLISH, SAME, LATER = "publish", "same", "later"


def decide(s: dict[str, Any], last: dict[str, Any] | None, since_last: float) -> str:
    """What to do with status `s`, `since_last` seconds after `last` was published (and at
    least STATUS_INTERVAL after it): PUBLISH it, drop it as the SAME, or say it LATER (only
    volatile fields moved: ask again once IDLE_STATUS_INTERVAL has passed)."""
    if s == last:
        return SAME
    if (
        last is not None
        and since_last < IDLE_STATUS_INTERVAL
        and all(s.get(k) == last.get(k) for k in s.keys() | last.keys() if k not in VOLATILE_STATUS)
    ):
        return LATER
    return PUBLISH
