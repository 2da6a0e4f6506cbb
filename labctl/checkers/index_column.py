"""What one node applied at each log index, as columns rather than a dict of tuples.

A node applies indices in order, so nearly every write extends a contiguous run: the run
is a list of request ids (shared strings) and an array of times, 16 bytes an index where
a dict entry holding an (id, time) tuple and its float cost about 180 (measured on a Raft
soak record, the largest table of the lost-write checker). Anything out of order (a
snapshot's image reporting old indices, a gap) goes to a small dict beside the run. The
newest write of an index wins, as with the dict. Rows at or below a settled floor are
dropped from the front (`drop_through`), so a column holds what is not settled yet.
"""

from __future__ import annotations

from array import array

MAX_GAP = 16  # indices a write may land ahead of the run and still extend it
RESTART_BELOW = 64  # a run shorter than this moves aside for a write that does not fit it


class IndexColumn:
    """index -> (request id, time) of the last apply there."""

    __slots__ = ("base", "other", "rids", "times")

    def __init__(self) -> None:
        self.base = 0  # the index of rids[0]
        self.rids: list[str | None] = []  # None: a hole, nothing applied there in the run
        self.times = array("d")
        self.other: dict[int, tuple[str, float]] = {}  # outside the run

    def set(self, index: int, rid: str, t: float) -> None:
        rids = self.rids
        if not rids:
            self.base = index
        at = index - self.base
        if len(rids) <= at <= len(rids) + MAX_GAP:
            # Next in the run, or a few ahead (a snapshot's image skips the reads): the
            # skipped ones are holes (None).
            while len(rids) < at:
                rids.append(None)
                self.times.append(0.0)
            rids.append(rid)
            self.times.append(t)
            if self.other:
                self.other.pop(index, None)  # an older write of it, made outside the run
        elif 0 <= at < len(rids):
            rids[at] = rid
            self.times[at] = t
            if self.other:
                self.other.pop(index, None)
        elif len(rids) < RESTART_BELOW and index not in self.other:
            # A short run that the writes left (a snapshot's sparse old indices came
            # first, then the log from the snapshot on): start the run again here.
            other = self.other
            for i, (r, when) in enumerate(zip(rids, self.times, strict=True)):
                if r is not None:
                    other[self.base + i] = (r, when)
            self.base, self.rids, self.times = index, [rid], array("d", [t])
        else:
            self.other[index] = (rid, t)

    def get(self, index: int) -> tuple[str, float] | None:
        at = index - self.base
        if 0 <= at < len(self.rids):
            rid = self.rids[at]
            if rid is not None:
                return rid, self.times[at]
        return self.other.get(index)

    def __len__(self) -> int:
        return sum(r is not None for r in self.rids) + len(self.other)

    def drop_through(self, index: int) -> None:
        """Forget every index up to `index` (settled: see durable_floor.py)."""
        k = min(index - self.base + 1, len(self.rids))
        if k > 0:
            del self.rids[:k]
            del self.times[:k]
            self.base += k
        if not self.rids:
            self.base = index + 1
        if self.other:
            self.other = {i: v for i, v in self.other.items() if i > index}
