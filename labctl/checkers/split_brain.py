"""Split brain: two different nodes became leader in the same term (election safety).

Every way of becoming leader counts: the naive protocol's "initial" and "self-promoted"
leaders break election safety just as two elected ones would. Two leaders at the same
moment in different terms are normal during a handover (the old one has not heard of the
new term yet) and are not flagged; a node that becomes leader again in the same term (a
restart replaying its WAL) is not a second leader.

Where a protocol reports the view each command was decided in (PBFT: `view` on applied
events), split brain is also two different requests decided at one sequence number in one
view, on two replicas: the equivocation that a quorum of honest replicas is meant to make
impossible, and that f+1 liars can bring about. Those rows go once the settled durable
floor (labctl/checkers/durable_floor.py) passes them: no replica decides there again, and
kept, they grew by a row per sequence number (a 30-minute PBFT soak's supervisor grew
24 MB a minute).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import Checker, Violation, get_float, get_int, get_str, op_label
from labctl.checkers.durable_floor import KINDS as FLOOR_KINDS
from labctl.checkers.durable_floor import DurableFloor
from protocols.base import events as ev


class SplitBrainChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({ev.BECAME_LEADER, ev.APPLIED, *FLOOR_KINDS})
    gates: ClassVar[Mapping[str, str]] = {ev.APPLIED: "view"}

    def __init__(self) -> None:
        super().__init__()
        # term -> node -> (t, how) of its first became_leader in that term
        self.leaders: dict[int, dict[str, tuple[float, str | None]]] = {}
        # (view, index) -> node -> request id, for applied events that carry a view
        self.decided: dict[tuple[int, int], dict[str, str]] = {}
        self.labels: dict[tuple[int, int], dict[str, str]] = {}  # what each node decided
        self.reported: set[tuple[int, int]] = set()
        self.floor = DurableFloor()
        self.below_floor = 0  # decisions at or below the settled floor: nothing to compare

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        kind = rec.get("kind")
        if kind == ev.APPLIED:
            return self._decided(rec) if "view" in rec else []
        if kind != ev.BECAME_LEADER:
            settled = self.floor.on_event(rec)
            if settled is not None and self.decided:
                self._settle(settled)
            return []
        term, node, t = get_int(rec, "term"), get_str(rec, "src"), get_float(rec, "t")
        if term is None or node is None or t is None:
            self.malformed += 1
            return []
        leaders = self.leaders.setdefault(term, {})
        if node in leaders:
            return []
        leaders[node] = (t, get_str(rec, "how"))
        if len(leaders) < 2:
            return []
        # A third leader in the same term is news too: one violation per extra leader.
        nodes = sorted(leaders)
        count = "two" if len(nodes) == 2 else str(len(nodes))
        return [
            Violation(
                kind="split-brain",
                t=t,
                nodes=nodes,
                detail=f"{count} leaders in term {term}: {', '.join(nodes)}",
                evidence={
                    "term": term,
                    "leaders": {n: {"t": lt, "how": how} for n, (lt, how) in leaders.items()},
                },
            )
        ]

    def _decided(self, rec: Mapping[str, Any]) -> list[Violation]:
        view, index = get_int(rec, "view"), get_int(rec, "index")
        node, rid, t = get_str(rec, "src"), get_str(rec, "request_id"), get_float(rec, "t")
        if view is None or index is None or node is None or rid is None or t is None:
            self.malformed += 1
            return []
        if index <= self.floor.settled:
            self.below_floor += 1
            return []
        key = (view, index)
        decided = self.decided.setdefault(key, {})
        decided[node] = rid
        if key in self.reported:
            return []
        labels = self.labels.setdefault(key, {})
        labels[node] = op_label(rec)
        other = next((n for n, r in decided.items() if r != rid), None)
        if other is None:
            return []
        self.reported.add(key)
        said = self.labels.pop(key)
        (a, ra), (b, rb) = sorted([(other, decided[other]), (node, rid)])
        return [
            Violation(
                kind="split-brain",
                t=t,
                nodes=[a, b],
                detail=f"two requests decided at seq {index} in view {view}: "
                f"{said.get(a, '?')} ({ra}) on {a}, {said.get(b, '?')} ({rb}) on {b}",
                evidence={"view": view, "index": index, "decided": {a: ra, b: rb}},
            )
        ]

    def _settle(self, settled: int) -> None:
        """Forget the decisions at or below `settled`: no replica decides there again."""
        for key in [k for k in self.decided if k[1] <= settled]:
            del self.decided[key]
            self.labels.pop(key, None)
            self.reported.discard(key)
