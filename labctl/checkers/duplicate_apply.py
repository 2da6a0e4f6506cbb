"""Duplicate apply: one request id executed twice on one replica (the double buy).

Two pieces of evidence, one violation per request id:

- the replica applied the id at two different indices and executed it both times: a
  client retry that reached the log twice. An exactly-once state machine (Raft's session
  table) reports the second apply with duplicate=True and leaves the state alone, so for
  those protocols a duplicate=True apply is the protection working, not a violation;
- the replica says duplicate=True (it had executed the id before, perhaps in a snapshot
  we saw no events for) and the protocol is not exactly-once: it executed it again.

Only writes count: a get that reached the log twice changes nothing. A replica whose
index goes back restarted: its state machine starts empty and executes its log again,
so what it executed from that index on is forgotten, not counted twice (EPaxos replays
non-conflicting commands in another order than the first time).

Bounded by the durable floor (labctl/checkers/durable_floor.py): of what a replica applied
at or below the settled floor, only its last SESSION_WINDOW writes are kept, the window
of the state machine's own session table (nodes/state_machine.py): a retry that reaches
the log further behind its first apply is beyond what an exactly-once state machine
recognises, and beyond what this checker remembers. Above the floor everything is kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import (
    WRITE_OPS,
    Checker,
    Violation,
    get_float,
    get_int,
    get_str,
    op_label,
)
from labctl.checkers.durable_floor import KINDS as FLOOR_KINDS
from labctl.checkers.durable_floor import DurableFloor
from nodes.state_machine import MAX_SESSIONS
from protocols.base import events as ev

SESSION_WINDOW = MAX_SESSIONS  # writes per replica kept below the settled floor


class DuplicateApplyChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({ev.APPLIED, *FLOOR_KINDS})

    def __init__(self, exactly_once: bool = False) -> None:
        super().__init__()
        self.exactly_once = exactly_once
        self.first_index: dict[str, dict[str, int]] = {}  # node -> request id -> index
        self.last_index: dict[str, int] = {}  # node -> the index it applied last
        self.reported: set[str] = set()
        self.order: dict[str, deque[str]] = {}  # node -> its first_index keys, oldest first
        self.floor = DurableFloor()

    def _forget(self, seen: dict[str, int], order: deque[str]) -> None:
        """The oldest write beyond the window, if it is settled."""
        rid = order[0]
        at = seen.get(rid)
        if at is None:
            order.popleft()  # (a key the restart rule removed)
        elif at <= self.floor.settled:
            order.popleft()
            del seen[rid]

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        if rec.get("kind") != ev.APPLIED:
            self.floor.on_event(rec)
            return []
        node, index = get_str(rec, "src"), get_int(rec, "index")
        rid, t, op = get_str(rec, "request_id"), get_float(rec, "t"), get_str(rec, "op")
        if node is None or index is None or rid is None or t is None or op is None:
            self.malformed += 1
            return []
        seen = self.first_index.get(node)
        if seen is None:
            seen = self.first_index[node] = {}
            self.order[node] = deque()
        if index <= self.last_index.get(node, 0):
            # A restart: everything from `index` on is being executed again.
            self.first_index[node] = seen = {r: i for r, i in seen.items() if i < index}
            self.order[node] = deque(seen)
        self.last_index[node] = index
        if op not in WRITE_OPS:
            return []
        duplicate = rec.get("duplicate") is True
        first = seen.get(rid)
        if first is None:
            seen[rid] = index
            order = self.order[node]
            order.append(rid)
            if len(order) > SESSION_WINDOW and self.floor.settled:
                self._forget(seen, order)
        if rid in self.reported or first == index:
            return []  # already reported, or a restart replaying the same entry
        if not duplicate and first is None:
            return []  # the ordinary case: first execution
        if duplicate and self.exactly_once:
            return []  # answered from the session table: the state did not change
        if first is None:
            # duplicate=True the first time we see it: executed before our records began
            # (a snapshot, a restart), and the state machine executed it again.
            detail = f"{node} executed {op_label(rec)} ({rid}) again at index {index}"
        else:
            detail = f"{node} applied {op_label(rec)} ({rid}) twice, at indices {first} and {index}"
        first = index if first is None else first
        self.reported.add(rid)
        return [
            Violation(
                kind="duplicate-apply",
                t=t,
                nodes=[node],
                detail=detail,
                evidence={
                    "request_id": rid,
                    "op": op,
                    "indices": sorted({first, index}),
                    "duplicate_flag": duplicate,
                },
            )
        ]
