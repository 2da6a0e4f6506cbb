"""Catching up: instances a replica missed while it was down or cut off.

A replica learns that instance numbers exist from the instances it hears of, and recovers
the ones it never heard of like any undecided instance (a Prepare: whoever has it
committed answers so). Every `sync_interval` it also tells one peer, in turn, how far it
knows each replica's instances (`Sync`); the peer sends the Commits above that, a batch at
a time (`MAX_GAP`), so no single input does unbounded work.

Two ways to fall behind for good, both found by seeded random schedules in simnet:

- a replica restarts with holes below the highest number it knows (the timers for them
  died with the process): `_recover_holes` at start;
- a replica cut off while hundreds of instances commit learns, at the heal, how far the
  others got, and timers cover only the last batch below that: its Syncs then ask from the
  top of its committed prefix (`committed_upto`) until the backlog is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.base import Ready
from protocols.epaxos.instances import Instance, InstanceId
from protocols.epaxos.messages import COMMITTED, Commit, Sync

MAX_GAP = 256  # instances one input may schedule or send for catching up
# Instance numbers one Sync may make a replica scan, per replica row: a row with long
# stretches of numbers nobody committed (or a known_max far above anything real) is
# walked a piece per Sync, never in one input (a forged Sync once spun a replica at 100%).
MAX_SCAN = 16 * MAX_GAP
# How far above the highest number of q we know one Sync may say q's numbers go. An
# honest peer's claim is what it saw; a larger jump is learnt over several Syncs, so a
# forged 2**62 cannot put the row's horizon out of reach in one message.
MAX_AHEAD = 64 * MAX_GAP


class CatchUp:
    """A mixin of EPaxosProtocol; what it uses of the core is declared here."""

    # State owned by EPaxosProtocol (see core.py; `compacted` by the Checkpoints mixin).
    n: int
    idx: int
    instances: dict[InstanceId, Instance]
    known_max: list[int]
    committed_upto: list[int]
    compacted: list[int]
    out: Ready

    if TYPE_CHECKING:  # provided by EPaxosProtocol and the Checkpoints mixin

        def _schedule(self, iid: InstanceId, t: float, replace: bool = True) -> None: ...
        def _recovery_time(self, iid: InstanceId | None = None) -> float: ...
        def _peer_checkpoint(self, src: str, floor: tuple[int, ...]) -> None: ...

    def _learn_numbers(self, q: int, inum: int) -> None:
        """Instances of q numbered below one we know of exist (or were recovered as
        no-ops): those we never heard of get a recovery timer, like any undecided one."""
        known = self.known_max[q]
        if inum <= known:
            return
        self.known_max[q] = inum
        # Bounded: one input schedules at most a batch; Syncs bring a longer backlog.
        self._recover_unknown(q, max(known + 1, inum - MAX_GAP), inum)

    def _recover_unknown(self, q: int, lo: int, hi: int) -> None:
        """A recovery timer for each of q's numbers in [lo, hi) we hold no record of."""
        for j in range(max(lo, self.compacted[q] + 1), hi):
            if (q, j) not in self.instances:
                self._schedule((q, j), self._recovery_time(), replace=False)

    def _sync_point(self) -> tuple[int, ...]:
        """What a Sync says we know, per replica: the highest number we have seen, or,
        when more than a batch lies undecided below it here (we were cut off while the
        others went on, and a new instance told us how far), the top of our committed
        prefix: peers send what they committed above it, a batch per Sync, until the
        backlog is gone. Recovery timers cover only the last batch below a new number."""
        return tuple(
            c if k - c > MAX_GAP else k
            for k, c in zip(self.known_max, self.committed_upto, strict=True)
        )

    def _advance_committed(self, q: int) -> None:
        c = self.committed_upto[q]
        while (inst := self.instances.get((q, c + 1))) is not None and inst.status == COMMITTED:
            c += 1
        self.committed_upto[q] = c

    def _on_sync(self, src: str, m: Sync) -> None:
        self._peer_checkpoint(src, m.floor)
        sent = 0
        for q, theirs in enumerate(m.known):
            start = max(theirs, self.compacted[q])
            top = min(self.known_max[q], start + MAX_SCAN)
            for j in range(start + 1, top + 1):
                if sent >= MAX_GAP:
                    break  # the rest with a later Sync: a peer far behind is not one input
                inst = self.instances.get((q, j))
                if inst is not None and inst.status == COMMITTED:
                    self.out.send(src, Commit(q, j, inst.cmds or (), inst.seq, inst.deps))
                    sent += 1
            theirs = min(theirs, self.known_max[q] + MAX_AHEAD)
            if theirs > self.known_max[q]:
                self._learn_numbers(q, theirs + 1)
                self.known_max[q] = theirs

    def _recover_holes(self) -> None:
        """At start: numbers below the highest we know of that we hold no record of. We
        never heard of them, and the timers `_learn_numbers` set for them died with the
        process; recover each (whoever has it committed answers so). Below the committed
        prefix there are none."""
        for q in range(self.n):
            self._advance_committed(q)
            if q != self.idx:  # our own numbers: the caller handles our reservations
                self._recover_unknown(q, self.committed_upto[q] + 1, self.known_max[q])
