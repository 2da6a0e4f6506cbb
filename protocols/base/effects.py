"""Side effects at most once per request: the orders a replica has applied, by request id.

A client that retries puts one request in the log twice; the runtime's session table
applies it once, but the side effect (the BrokerWrite a leader sends when it applies an
order) leaves from the protocol, before the runtime's apply. So a protocol that sends
side effects keeps this table too: every replica records each order it applies, leader
or not, and only the first apply of a request id may send. A leader elected later then
does not re-send what it applied as a follower.

Bounded as the session table is (nodes/state_machine.py): a retry that arrives after
MAX_REQUESTS other orders is not recognised. Not persisted: after a restart the log is
applied again as a follower (which sends nothing), and a snapshot restore forgets the
table, a gap as wide as the session table's own when it is rebuilt from an image.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_REQUESTS = 20_000


class AppliedOrders:
    def __init__(self, limit: int = MAX_REQUESTS) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first(self, request_id: str) -> bool:
        """Record that `request_id` was applied here; True the first time."""
        if request_id in self._seen:
            return False
        self._seen[request_id] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return True

    def clear(self) -> None:
        self._seen.clear()
