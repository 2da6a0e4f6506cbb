"""Divergence: two replicas applied different commands at the same log index.

Whatever reached the log is compared, reads included: a replica whose log holds a get
where another's holds a put has a different history, even if the kv state agrees. One
violation per index (the first two replicas seen to disagree there). A replica applying
the same index again (a restart replaying its WAL) only replaces its own entry.

With `per_key` (EPaxos: only commands on one key are ordered, and each replica numbers
what it executes itself) the comparison is per key instead: the k-th command a replica
executed on a key must be the k-th every other replica executed on it. One violation per
key. A replica whose index goes back (it restarted and re-executes from its log) forgets
what it executed from that index on.

Rows below the settled floor (labctl/checkers/durable_floor.py: every replica holds them
in a durable snapshot and never applies them again) are forgotten, so memory stays flat
in a long run. What stays of the last DIGEST_WINDOW of them is a 4-byte digest of the
command every replica applied there: a replica that applies there again (one whose disk
lost or corrupted its snapshot, repaired from its peers' logs, which keep only a few
entries below their own snapshots; or one breaking its word) is compared with it, and a
different command is a divergence, as it was while the row was kept. A snapshot's image
reporting what it holds is not compared (what it was made of was). Below the window, or
where no digest could be kept (nobody applied there, or replicas disagreed), the apply is
counted in `below_floor`, unchecked.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import Any, ClassVar

from labctl.checkers.base import Checker, Violation, get_float, get_int, get_str, op_label
from labctl.checkers.durable_floor import KINDS as FLOOR_KINDS
from labctl.checkers.durable_floor import DurableFloor
from protocols.base import events as ev

DIGEST_WINDOW = 1 << 16  # settled indices whose command's digest is kept (256 KB)


class DivergenceChecker(Checker):
    kinds: ClassVar[frozenset[str]] = frozenset({ev.APPLIED, *FLOOR_KINDS})

    def __init__(self, per_key: bool = False) -> None:
        super().__init__()
        # index -> (request id, what it is, the nodes that applied it there, in order): the
        # common case, every node applied the same command at the index, as one row.
        self.agreed: dict[int, tuple[str, ...]] = {}
        self.odd_labels: dict[int, dict[str, str]] = {}  # index -> node -> its other label
        # Where nodes differ (or one applied another label): a row per node.
        self.by_index: dict[int, dict[str, str]] = {}  # index -> node -> request id
        self.labels: dict[int, dict[str, str]] = {}  # index -> node -> what it applied there
        self.reported: set[int] = set()
        self.per_key = per_key
        # key -> [(rid, first node, what it was)]
        self.key_order: dict[str, list[tuple[str, str, str]]] = {}
        self.executed: dict[str, list[tuple[int, str]]] = {}  # node -> [(index, key)]
        self.positions: dict[str, dict[str, int]] = {}  # node -> key -> commands executed
        self.reported_keys: set[str] = set()
        # Per key, below the floors: what each replica executed up to its floor is folded
        # into counts (`base_positions`, up to index `cut`), and the first positions every
        # replica has passed so are dropped from key_order (`key_offset` of them).
        self.last_index: dict[str, int] = {}  # node -> the index it executed last
        self.cut: dict[str, int] = {}  # node -> executed up to here is in base_positions
        self.base_positions: dict[str, dict[str, int]] = {}
        self.key_offset: dict[str, int] = {}
        self.untracked: set[str] = set()  # restarted below its cut: positions unknown
        self.floor = DurableFloor()
        self.settled = 0  # rows at or below it are forgotten (floor.settled, as dropped)
        self.below_floor = 0  # applies below it by a replica whose floor was void: unchecked
        # index % DIGEST_WINDOW -> digest of the command applied at a settled index, for
        # the last DIGEST_WINDOW of them (0: none kept)
        self.digests = array("I", bytes(4 * DIGEST_WINDOW))

    def on_event(self, rec: Mapping[str, Any]) -> list[Violation]:
        if rec.get("kind") != ev.APPLIED:
            settled = self.floor.on_event(rec)
            if settled is not None:
                self._settle(settled)
            if self.per_key and rec.get("kind") == ev.DURABLE_FLOOR:
                node = rec.get("src")
                promised = self.floor.promised.get(node)  # type: ignore[arg-type]
                if promised is not None:
                    self._fold(node, promised)  # type: ignore[arg-type]
            return []
        node, index = get_str(rec, "src"), get_int(rec, "index")
        rid, t = get_str(rec, "request_id"), get_float(rec, "t")
        if node is None or index is None or rid is None or t is None:
            self.malformed += 1
            return []
        if self.per_key:
            return self._per_key(node, index, rid, t, rec.get("key"), rec)
        if index <= self.settled:
            return self._below_floor(node, index, rid, t, rec)
        if index in self.reported:
            return []  # one violation per index: what else lands there changes nothing
        label = op_label(rec)
        agreed = self.agreed.get(index)
        if agreed is not None:
            if agreed[0] == rid:
                if node not in agreed[2:]:
                    self.agreed[index] = (*agreed, node)
                # The same command, told with fewer fields (a snapshot's image has no key
                # or value): kept aside, for the sentence if a disagreement comes.
                if label != agreed[1]:
                    self.odd_labels.setdefault(index, {})[node] = label
                elif index in self.odd_labels:
                    self.odd_labels[index].pop(node, None)
                return []
            # The first disagreement there: back to a row per node.
            del self.agreed[index]
            odd = self.odd_labels.pop(index, {})
            self.by_index[index] = {n: agreed[0] for n in agreed[2:]}
            self.labels[index] = {n: odd.get(n, agreed[1]) for n in agreed[2:]}
        elif index not in self.by_index:
            self.agreed[index] = (rid, label, node)
            return []
        applied = self.by_index[index]
        applied[node] = rid
        labels = self.labels[index]
        labels[node] = label
        other = next((n for n, r in applied.items() if r != rid), None)
        if other is None:
            return []
        self.reported.add(index)
        del self.labels[index]
        del self.by_index[index]
        first, second = sorted([(other, applied[other]), (node, rid)])
        said = {n: f"{labels.get(n, '?')} ({applied[n]})" for n in (other, node)}
        return [
            Violation(
                kind="divergence",
                t=t,
                nodes=[first[0], second[0]],
                detail=(
                    f"index {index} holds {said[first[0]]} on {first[0]} but {said[second[0]]} "
                    f"on {second[0]}"
                ),
                evidence={"index": index, "applied": {first[0]: first[1], second[0]: second[1]}},
            )
        ]

    def _fold(self, node: str, floor: int) -> None:
        """Per key: `node`'s executions up to its floor become counts; then drop the
        positions of each key that every replica has folded (none executes them again)."""
        executed = self.executed.get(node)
        if node in self.untracked or not executed or floor <= self.cut.get(node, 0):
            return
        k = next((i for i, (at, _) in enumerate(executed) if at > floor), len(executed))
        if k == 0:
            return
        base = self.base_positions.setdefault(node, {})
        for _, key in executed[:k]:
            base[key] = base.get(key, 0) + 1
        del executed[:k]
        self.cut[node] = floor
        replicas = self.floor.floors
        if any(f == 0 for f in replicas.values()):
            return
        bases = [self.base_positions.get(n, {}) for n in replicas]
        for key, order in self.key_order.items():
            settled = min(b.get(key, 0) for b in bases)
            drop = settled - self.key_offset.get(key, 0)
            if drop > 0:
                del order[:drop]
                self.key_offset[key] = settled

    def _settle(self, settled: int) -> None:
        """Forget every row up to `settled`: no replica applies there again."""
        if self.per_key:
            return
        agreed, odd, by_index, labels = self.agreed, self.odd_labels, self.by_index, self.labels
        reported, digests = self.reported, self.digests
        for i in range(self.settled + 1, settled + 1):
            row = agreed.pop(i, None)
            digests[i % DIGEST_WINDOW] = _digest(row[0]) if row is not None else 0
            if odd:
                odd.pop(i, None)
            if by_index:
                by_index.pop(i, None)
                labels.pop(i, None)
            if reported:
                reported.discard(i)
        self.settled = settled

    def _below_floor(
        self, node: str, index: int, rid: str, t: float, rec: Mapping[str, Any]
    ) -> list[Violation]:
        if rec.get("from_snapshot"):
            return []  # an image saying what it holds: what it was made of was compared
        digest = self.digests[index % DIGEST_WINDOW] if index > self.settled - DIGEST_WINDOW else 0
        if digest == 0:
            self.below_floor += 1
            return []
        if digest == _digest(rid) or index in self.reported:
            return []
        self.reported.add(index)
        return [
            Violation(
                kind="divergence",
                t=t,
                nodes=[node],
                detail=(
                    f"index {index} holds {op_label(rec)} ({rid}) on {node} but another command "
                    f"on every replica, settled there below their durable floors "
                    f"(at or below {self.settled})"
                ),
                evidence={"index": index, "settled": self.settled, "applied": {node: rid}},
            )
        ]

    def _per_key(
        self, node: str, index: int, rid: str, t: float, key: Any, rec: Mapping[str, Any]
    ) -> list[Violation]:
        if not isinstance(key, str):
            self.malformed += 1
            return []
        executed = self.executed.setdefault(node, [])
        positions = self.positions.setdefault(node, {})
        last = self.last_index.get(node, 0)
        self.last_index[node] = index
        if index <= last:
            # A restart: the replica executes its log again from `index`.
            if index <= self.cut.get(node, 0):
                # Below what we folded into its base counts: its floor did not hold (a
                # disk that lost its checkpoint). Its positions are unknown until a
                # restart from above the cut again.
                self.untracked.add(node)
            else:
                self.untracked.discard(node)
            base = self.base_positions.get(node, {})
            at = next((i for i, (at, _) in enumerate(executed) if at >= index), len(executed))
            del executed[at:]
            positions.clear()
            positions.update(base)
            for _, k in executed:
                positions[k] = positions.get(k, 0) + 1
        if index > self.cut.get(node, 0):  # (below it: untracked, the counts say it)
            executed.append((index, key))
        if node in self.untracked:
            self.below_floor += 1
            return []
        position = positions.get(key, 0)
        positions[key] = position + 1
        order = self.key_order.setdefault(key, [])
        at = position - self.key_offset.get(key, 0)
        if at < 0:
            self.below_floor += 1  # a settled position: nothing kept to compare with
            return []
        if at == len(order):
            order.append((rid, node, op_label(rec)))
            return []
        first_rid, first_node, first_label = order[at]
        if first_rid == rid or key in self.reported_keys:
            return []
        self.reported_keys.add(key)
        a, b = sorted([(first_node, first_rid), (node, rid)])
        said = {first_rid: f"{first_label} ({first_rid})", rid: f"{op_label(rec)} ({rid})"}
        return [
            Violation(
                kind="divergence",
                t=t,
                nodes=[a[0], b[0]] if a[0] != b[0] else [a[0]],
                detail=(
                    f"key {key!r}: command {position + 1} is {said[a[1]]} on {a[0]} but "
                    f"{said[b[1]]} on {b[0]}"
                ),
                evidence={
                    "key": key,
                    "position": position + 1,
                    "applied": {a[0]: a[1], b[0]: b[1]},
                },
            )
        ]


def _digest(rid: str) -> int:
    """A request id's 4-byte digest, never 0 (0 says none kept). Within one process:
    both sides of a comparison are made by the same checker."""
    return (hash(rid) & 0xFFFFFFFF) or 1
