"""Lost write: an acknowledged write that is absent from the agreed final state.

Decided at the end of the run, from the applied logs:

- absent from every replica's applied log: definitely lost;
- absent from a final leader's log (a node that became leader in the highest term seen;
  several if that term itself had split brain) although that leader applied past the
  index where the write took effect elsewhere: lost, overwritten by the new leader's
  history. A final leader that has not applied that far yet (elected just before the end)
  proves nothing, so it is not flagged.

Only ok writes count: a fail op definitely did not happen, an info op may or may not have.

A node that restarts holds only what it applies again (a replica replays its log; a
snapshot's image reports the writes it covers as from_snapshot): what it had applied
before counts only if a snapshot it restored since reaches that far. A disk that lost
acknowledged records (`fault disk --corrupt lose`) is thus seen in what the node holds
now, not hidden by what it once applied.

A write every replica applied at or below the settled floor (labctl/checkers/
durable_floor.py: every replica holds it in a durable snapshot and never applies it
again) cannot be lost any more by what the protocol does: it is settled and forgotten,
with its index rows, so memory stays flat in a long run. One settled before its client
heard back is remembered until the answer comes (or SETTLED_EARLY_FOR seconds of record
time). Only writes are kept per replica (a read cannot be lost). What a disk does to a
settled write afterwards (`--corrupt lose` of a snapshot record) is seen by divergence,
which keeps a digest of the settled commands for a replica that applies them again.
"""

from __future__ import annotations

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
from labctl.checkers.index_column import IndexColumn
from protocols.base import events as ev

SETTLED_EARLY_FOR = 60.0  # record seconds a write settled before its answer is remembered


class LostWriteChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset(
        {ev.APPLIED, ev.BECAME_LEADER, "node.starting", *FLOOR_KINDS}
    )
    reads_history: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[str, dict[str, int]] = {}  # node -> request id -> first index
        self.at_index: dict[str, IndexColumn] = {}  # node -> index -> (rid, t)
        self.top: dict[str, int] = {}  # node -> highest index applied
        self.leaders: dict[int, set[str]] = {}  # term -> nodes that became leader in it
        self.invoked_op: dict[str, str] = {}  # request id -> op, for completions without it
        self.invoked_label: dict[str, str] = {}  # request id -> "put k=v", for the sentence
        # request id -> (t, op, process, seq) of its ok completion, in completion order
        self.acked: dict[str, tuple[float, str, str | None, int | None]] = {}
        self.last_t = 0.0
        # node -> request id -> index: applied before its latest restart and not yet
        # confirmed since; snap_top: the highest index a restored snapshot reported since.
        self.before: dict[str, dict[str, int]] = {}
        self.snap_top: dict[str, int] = {}
        self.floor = DurableFloor()
        self.settled = 0  # writes applied everywhere at or below it are forgotten
        # request id -> record time it settled, for writes settled before their answer
        self.settled_early: dict[str, float] = {}
        self.cut: dict[str, int] = {}  # node -> its column is counted in held_below to here
        self.held_below: dict[str, int] = {}  # request id -> replicas holding it for good

    def _restarted(self, node: str) -> None:
        reach = self.snap_top.get(node, 0)
        kept = {r: i for r, i in self.before.get(node, {}).items() if i <= reach}
        kept.update(self.applied.pop(node, {}))
        self.before[node] = kept
        self.at_index.pop(node, None)
        self.top[node] = 0
        self.snap_top[node] = 0

    def _holds(self, node: str, rid: str) -> bool:
        if rid in self.applied.get(node, {}):
            return True
        index = self.before.get(node, {}).get(rid)
        return index is not None and index <= self.snap_top.get(node, 0)

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        if rec.get("kind") == "fault":  # only a byzantine one matters: the floor's
            settled = self.floor.on_event(rec)
            if settled is not None:
                self._settle(settled)
            return []
        node, t = get_str(rec, "src"), get_float(rec, "t")
        if node is None or t is None:
            self.malformed += 1
            return []
        self.last_t = max(self.last_t, t)
        kind = rec.get("kind")
        if kind in FLOOR_KINDS:
            if kind == "node.starting":
                self._restarted(node)
            settled = self.floor.on_event(rec)
            if kind == ev.DURABLE_FLOOR and node in self.floor.promised:
                self._scan(node, self.floor.promised[node])
            if settled is not None:
                self._settle(settled)
            return []
        if kind == ev.BECAME_LEADER:
            term = get_int(rec, "term")
            if term is None:
                self.malformed += 1
            else:
                self.leaders.setdefault(term, set()).add(node)
            return []
        index, rid = get_int(rec, "index"), get_str(rec, "request_id")
        if index is None or rid is None:
            self.malformed += 1
            return []
        applied = self.applied.get(node)
        if applied is None:
            applied = self.applied[node] = {}
        if index > self.settled:
            if rec.get("op") in WRITE_OPS:
                applied.setdefault(rid, index)
            column = self.at_index.get(node)
            if column is None:
                column = self.at_index[node] = IndexColumn()
            column.set(index, rid, t)
        elif rid in self.acked or rid in self.invoked_op:
            # Settled there, but not this write (replicas disagreed at its index): kept.
            applied.setdefault(rid, index)
        if index > self.top.get(node, 0):
            self.top[node] = index
        if rec.get("from_snapshot"):
            self.snap_top[node] = max(self.snap_top.get(node, 0), index)
        return []

    def _scan(self, node: str, floor: int) -> None:
        """`node` holds what it applied up to `floor` for good: count it for each write
        there. A write every replica holds so is settled, wherever each applied it (with
        `ordering = "per_key"`, EPaxos, each replica numbers its own executions, so the
        index-by-index pass of `_settle` never finds them all at one index)."""
        cut = self.cut.get(node, 0)
        column, applied = self.at_index.get(node), self.applied.get(node)
        if floor <= cut or column is None or not applied:
            return
        held, replicas = self.held_below, len(self.floor.floors)
        for i in range(max(cut, column.base - 1) + 1, floor + 1):
            got = column.get(i)
            if got is None or applied.get(got[0]) != i:
                continue  # a read, a hole, or not where this write first took effect here
            rid = got[0]
            count = held.get(rid, 0) + 1
            if count >= replicas:
                self._settle_write(rid)
            else:
                held[rid] = count
        self.cut[node] = floor

    def _settle_write(self, rid: str) -> None:
        """Every replica holds `rid` in a durable snapshot: forget it."""
        if self.acked.pop(rid, None) is None:
            # Settled before its answer (or its invoke) reached us: remembered, so an ok
            # that comes later is not taken for a write nobody holds.
            self.settled_early[rid] = self.last_t
        self.invoked_op.pop(rid, None)
        self.invoked_label.pop(rid, None)
        self.held_below.pop(rid, None)
        for a in self.applied.values():
            a.pop(rid, None)
        for b in self.before.values():
            b.pop(rid, None)

    def _settle(self, settled: int) -> None:
        """Every replica holds what it applied up to `settled` in a durable snapshot: a
        write all of them applied there is held for good. Forget it, and the rows."""
        columns = [self.at_index.get(n) for n in self.floor.floors]
        applied = [self.applied.get(n, {}) for n in self.floor.floors]
        early = self.settled_early
        if all(c is not None for c in columns):
            for i in range(self.settled + 1, settled + 1):
                rid = None
                for c in columns:
                    got = c.get(i)  # type: ignore[union-attr]
                    if got is None:
                        continue  # a hole (a snapshot skipped it): its image holds it
                    if rid is None:
                        rid = got[0]
                    elif got[0] != rid:
                        rid = None
                        break  # replicas disagree: nothing settles there
                if rid is None or not any(rid in a for a in applied):
                    continue  # nobody applied a command there, or it is a read
                self._settle_write(rid)
        for c in columns:
            if c is not None:
                c.drop_through(settled)
        self.settled = settled
        horizon = self.last_t - SETTLED_EARLY_FOR
        while early:
            rid, when = next(iter(early.items()))
            if when >= horizon:
                break
            del early[rid]

    def on_history(self, rec: Mapping[str, Any]) -> list[Violation]:
        kind, rid, t = get_str(rec, "type"), get_str(rec, "request_id"), get_float(rec, "t")
        if kind is None or rid is None or t is None:
            self.malformed += 1
            return []
        self.last_t = max(self.last_t, t)
        op = get_str(rec, "op")
        if kind == "invoke":
            # Only a write can be acknowledged and lost: a read's op and label would be kept
            # for the whole run for nothing (its completion is not a write either way).
            if op in WRITE_OPS:
                self.invoked_op[rid] = op
                self.invoked_label[rid] = op_label(rec)
            elif op is not None:  # the id reused for a read: what it was is no write
                self.invoked_op.pop(rid, None)
                self.invoked_label.pop(rid, None)
            return []
        invoked = self.invoked_op.pop(rid, None)
        op = op or invoked
        if self.settled_early and self.settled_early.pop(rid, None) is not None:
            self.invoked_label.pop(rid, None)
            return []  # held for good by every replica: nothing to check at the end
        if kind != "ok" or op not in WRITE_OPS:
            self.invoked_label.pop(rid, None)  # not acknowledged: it cannot be lost
        if kind == "ok" and op in WRITE_OPS:
            reply = rec.get("reply")
            seq = get_int(rec, "seq")
            if seq is None and isinstance(reply, Mapping):  # `labctl client` nests the reply
                seq = get_int(reply, "seq")
            self.acked[rid] = (t, op, get_str(rec, "process"), seq)
        return []

    def _said(self, rid: str, op: Any) -> str:
        label = self.invoked_label.get(rid)
        return f"{label} ({rid})" if label else f"{op} {rid}"

    def finish(self) -> list[Violation]:
        final_leaders: list[str] = []
        final_term = None
        if self.leaders:
            final_term = max(self.leaders)
            final_leaders = sorted(self.leaders[final_term])
        found = []
        for rid, (t_ok, op, process, seq) in self.acked.items():
            holders = [n for n in {*self.applied, *self.before} if self._holds(n, rid)]
            evidence: dict[str, Any] = {"request_id": rid, "op": op, "process": process}
            if not holders:
                evidence.update(acked_at=t_ok, seq=seq, replicas=sorted(self.applied))
                found.append(
                    Violation(
                        kind="lost-write",
                        t=self.last_t,
                        nodes=sorted(self.applied),
                        detail=f"acknowledged {self._said(rid, op)} is absent from every replica",
                        evidence=evidence,
                    )
                )
                continue
            index = min(self.applied.get(n, {}).get(rid) or self.before[n][rid] for n in holders)
            missing, t_evidence, instead = [], t_ok, {}
            for leader in final_leaders:
                if self._holds(leader, rid) or self.top.get(leader, 0) < index:
                    continue
                missing.append(leader)
                column = self.at_index.get(leader)
                other = column.get(index) if column is not None else None
                if other is not None:
                    instead[leader] = other[0]
                    t_evidence = max(t_evidence, other[1])
                else:  # the leader skipped that index (a snapshot): only the end proves it
                    t_evidence = max(t_evidence, self.last_t)
            if not missing:
                continue
            evidence.update(index=index, held_by=sorted(holders), term=final_term, instead=instead)
            found.append(
                Violation(
                    kind="lost-write",
                    t=t_evidence,
                    nodes=missing,
                    detail=(
                        f"acknowledged {self._said(rid, op)} (index {index}) is missing from final "
                        f"leader {', '.join(missing)} of term {final_term}"
                    ),
                    evidence=evidence,
                )
            )
        return found
