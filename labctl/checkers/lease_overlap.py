"""Lease overlap: two nodes held a valid lease at the same true time.

Only the lab can check this exactly: every node's lease arrives with `expiry_true`, its
end on the machine's clock that all processes share (the true time events carry). A node
holds a lease from its lease event's `t` until `expiry_true`; its next lease event replaces the
interval (a renewal, or expiry None when it stops holding one), and a process that exits
holds nothing any more. Intervals are half-open, so a lease that starts exactly when the
previous holder's ends does not overlap it.

Checking a new interval against the others' current ones is exact when records arrive in
true-time order, which is how the supervisor receives them (give or take the ordering of
two processes' sends within a millisecond). One violation per pair of tenures (node,
term), not one per renewal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import Checker, Violation, get_float, get_int, get_str
from protocols.base import events as ev

PROCESS_EXIT = "process.exit"  # supervisor: {node, code}


class LeaseOverlapChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({ev.LEASE, PROCESS_EXIT})

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, tuple[float, float, int | None]] = {}  # node -> (start, end, term)
        self.reported: set[tuple[tuple[str, int | None], tuple[str, int | None]]] = set()

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        t = get_float(rec, "t")
        if rec.get("kind") == PROCESS_EXIT:
            node = get_str(rec, "node")
            if node is not None:
                self.held.pop(node, None)
            return []
        node = get_str(rec, "src")
        if node is None or t is None:
            self.malformed += 1
            return []
        end, term = get_float(rec, "expiry_true"), get_int(rec, "term")
        if end is None or end <= t:
            self.held.pop(node, None)
            return []
        self.held[node] = (t, end, term)
        found = []
        for other, (start_b, end_b, term_b) in self.held.items():
            if other == node:
                continue
            lo, hi = max(t, start_b), min(end, end_b)
            if lo >= hi:
                continue
            first, second = sorted([(node, term), (other, term_b)], key=lambda p: p[0])
            if (first, second) in self.reported:
                continue
            self.reported.add((first, second))
            found.append(
                Violation(
                    kind="lease-overlap",
                    t=t,
                    nodes=sorted([node, other]),
                    detail=(
                        f"{other} (term {term_b}) and {node} (term {term}) both held a valid "
                        f"lease at t={lo:.3f}, for up to {(hi - lo) * 1000:.0f} ms"
                    ),
                    evidence={
                        "leases": {
                            other: {"term": term_b, "from": start_b, "until": end_b},
                            node: {"term": term, "from": t, "until": end},
                        },
                        "overlap": [lo, hi],
                    },
                )
            )
        return found
