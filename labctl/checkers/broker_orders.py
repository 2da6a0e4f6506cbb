"""Duplicate order: the broker executed one order twice (the double buy, downstream).

Every order a client submits has one order id, kept across its retries (the workload
builds it once per operation). The broker records each write it receives with the order
id, the token and whether it accepted it. Accepting one order id twice is the harm a user
sees: two buys for one click. It happens when one order is committed twice under two
request ids (a client that retries with a fresh id: the session table cannot tell them
apart), or when two leaders both send one committed order and the broker takes both.

Receiving an order twice and rejecting the second copy (a fenced broker, a stale token)
is the protection working: counted in the summary (`received_twice`), not a violation.

At least once, the other half, is not a property the lab can demand of these protocols:
a side effect leaves from whichever node leads when it applies the entry, after the
apply, and a leader that dies between the two takes the send with it; no protocol here
keeps an outbox that a successor would re-send from. The summary counts what that
costs (`orders_never_accepted`: orders a client saw committed that the broker never
accepted), so a run shows it without failing on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import Checker, Violation, get_float, get_int, get_str

BROKER_WRITE = "broker.write"


class BrokerOrdersChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({BROKER_WRITE})
    reads_history: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.accepted: dict[str, tuple[str, int, str, float]] = {}  # order -> rid, token, node, t
        self.received: dict[str, int] = {}
        self.reported: set[str] = set()
        self.accepted_rids: set[str] = set()
        self.ok_orders: set[str] = set()  # request ids of orders a client was told committed

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        order, t = get_str(rec, "order_id"), get_float(rec, "t")
        rid, token = get_str(rec, "request_id"), get_int(rec, "token")
        node = get_str(rec, "node") or "?"
        if order is None:
            return []  # a write without an order (a broker before order ids were recorded)
        if t is None or rid is None or token is None:
            self.malformed += 1
            return []
        self.received[order] = self.received.get(order, 0) + 1
        if rec.get("accepted") is not True:
            return []
        self.accepted_rids.add(rid)
        first = self.accepted.get(order)
        if first is None:
            self.accepted[order] = (rid, token, node, t)
            return []
        if order in self.reported:
            return []
        self.reported.add(order)
        rid0, token0, node0, t0 = first
        how = "two request ids" if rid0 != rid else "one request, sent twice"
        return [
            Violation(
                kind="duplicate-order",
                t=t,
                nodes=sorted({node0, node}),
                detail=(
                    f"broker executed order {order} twice ({how}): {rid0} from {node0} "
                    f"(token {token0}) and {rid} from {node} (token {token})"
                ),
                evidence={
                    "order_id": order,
                    "writes": [
                        {"request_id": rid0, "token": token0, "node": node0, "t": t0},
                        {"request_id": rid, "token": token, "node": node, "t": t},
                    ],
                },
            )
        ]

    def on_history(self, rec: Mapping[str, Any]) -> list[Violation]:
        if rec.get("type") == "ok" and rec.get("op") == "order":
            rid = get_str(rec, "request_id")
            if rid is not None:
                self.ok_orders.add(rid)
        return []

    def summary(self) -> dict[str, int]:
        return {
            "orders_at_broker": len(self.received),
            "received_twice": sum(1 for n in self.received.values() if n > 1),
            "orders_never_accepted": len(self.ok_orders - self.accepted_rids),
        }
