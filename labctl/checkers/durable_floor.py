"""The settled floor: the index at or below which every replica's state is durable.

Each replica says its durable floor (protocols.base.events.DURABLE_FLOOR): every command
up to that index is in a snapshot on its disk, and it never applies them again. Below
the lowest floor of all replicas nothing a checker compares per index can change any
more: no replica will apply there again, not after a restart either, so the per-index
checkers (divergence, lost-write, duplicate-apply) settle those rows and forget them.

Why the minimum over all replicas, not a quorum: a replica behind (cut off, paused,
slow) has not applied what it has not reached, and its floor is at most what it applied.
A row it has yet to apply lies above its floor, so above the minimum, and is kept for the
comparison its apply will make.

Conservative on purpose:
- a replica that never said a floor holds it at 0 (a protocol that does not report one,
  a plugin, a node not started yet: the `replicas` of any floor event name them all);
- a restart (node.starting) or a wal_corrupt voids a replica's floor until it says one
  again: a replica says it at every start from a snapshot, so a floor it does not say
  again is one its disk lost (`fault disk --corrupt lose` loses fsynced records, which no
  checksum sees);
- the settled floor only rises: what was forgotten stays forgotten. What a replica whose
  floor was voided applies below it again cannot be compared (`below_floor` counts it).

A replica told to lie (a byzantine fault) leaves the minimum for good: the checkers ignore
everything it says from then on (labctl/checkers/runner.py), its floors too, so the floor
it said last held every row of the run (a PBFT run with one liar kept all of them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labctl.checkers.base import get_int, get_str
from protocols.base import events as ev

RESTATE = frozenset({ev.WAL_CORRUPT, "node.starting"})
KINDS = frozenset({ev.DURABLE_FLOOR, *RESTATE, "fault"})  # fault: a byzantine one
MAX_REPLICAS = 256  # a floor event naming more is not a lab's (a bound on what we keep)


class DurableFloor:
    """Every replica's floor; `settled` is the minimum, once it has risen."""

    __slots__ = ("excluded", "floors", "promised", "settled")

    def __init__(self) -> None:
        self.floors: dict[str, int] = {}  # replica -> its floor (0: none, or voided)
        self.settled = 0  # everything at or below it is forgotten by the checker
        # replica -> the floor it said since its last start (and no corrupt WAL since):
        # what its disk holds now, as far as we know
        self.promised: dict[str, int] = {}
        self.excluded: set[str] = set()  # told to lie: not waited for

    def on_event(self, rec: Mapping[str, Any]) -> int | None:
        """A floor, node.starting or wal_corrupt record: the new settled floor when it
        rose, else None (a record that is not well formed changes nothing)."""
        kind = rec.get("kind")
        if kind == "fault":
            return self._byzantine(rec)
        node = get_str(rec, "src")
        if node is None or node in self.excluded:
            return None
        if kind in RESTATE:
            # A new process, or a disk that is not what it wrote: the floor stands again
            # only once the node says it again (a start from a snapshot does at once; a
            # disk that lost the snapshot, `--corrupt lose`, cannot).
            if node in self.floors:
                self.floors[node] = 0
            self.promised.pop(node, None)
            return None
        index, replicas = get_int(rec, "index"), rec.get("replicas")
        if index is None or index < 0 or not isinstance(replicas, list):
            return None
        if len(replicas) > MAX_REPLICAS or not all(isinstance(r, str) for r in replicas):
            return None
        floors = self.floors
        for r in replicas:
            if r not in floors and r not in self.excluded:
                floors[r] = 0
        floors[node] = max(floors.get(node, 0), index)
        self.promised[node] = floors[node]
        return self._rise()

    def _byzantine(self, rec: Mapping[str, Any]) -> int | None:
        node, mode = rec.get("node"), rec.get("mode")
        if rec.get("fault") != "byzantine" or not isinstance(node, str):
            return None
        if mode in (None, "", "honest"):
            return None
        self.excluded.add(node)
        self.floors.pop(node, None)
        self.promised.pop(node, None)
        return self._rise()

    def _rise(self) -> int | None:
        low = min(self.floors.values(), default=0)
        if low > self.settled:
            self.settled = low
            return low
        return None

    def saw(self, node: str) -> None:
        """`node` applies commands: it has a floor too, 0 until it says one."""
        if node not in self.floors and node not in self.excluded:
            self.floors[node] = 0
