"""Checkpoints and compaction: memory and WAL bounded over a long run.

Every `checkpoint_interval` executed instances a replica asks the runtime for an image of
its state machine (`want_snapshot`) and writes a checkpoint: the image, its execution
position, and which instances the image holds (per replica, every instance up to `floor`,
plus the few executed above it). The WAL is then rewritten as that checkpoint followed by
the instances still kept (`compact`). A restarted replica restores the image and executes
only what lies beyond it.

Which instances may go: only those every replica has executed and holds in a durable
checkpoint of its own (the `floor` it reports in its Syncs). Nobody can ask for them again,
not even a replica that restarts (it starts from its checkpoint, above them) or one far
behind (it holds back the compaction until it has caught up, by ordinary Commits). The
`compacted` vector marks what is gone; messages about instances below it are stale
duplicates and are dropped. One place still needs to know about them: TryPreAccept asks
whether an interfering instance could be ordered wrongly, and a compacted one cannot be
asked about: the conflict index remembers, per key and replica, the highest compacted
instance, and attributes that do not cover an interfering one get a committed conflict
(recovery.py, `_find_conflict`, says why that is sound and why a blanket rule was not).
"""

from __future__ import annotations

from protocols.base import NodeConfig, Ready, SnapshotImage
from protocols.epaxos.execution import Executor
from protocols.epaxos.instances import Conflicts, Instance, InstanceId
from protocols.epaxos.messages import COMMITTED, Checkpoint, InstanceState, Reservation
from protocols.epaxos.options import Options

CHECKPOINT_EVENT = "epaxos.checkpoint"  # data: applied, compacted, kept (instances)


class Checkpoints:
    """A mixin of EPaxosProtocol: it owns the state `_init_checkpoints` sets, and uses
    the core's declared below. The core calls `_checkpoint` with the runtime's image."""

    # State owned by EPaxosProtocol (see core.py).
    config: NodeConfig
    n: int
    idx: int
    peers: tuple[str, ...]
    opts: Options
    instances: dict[InstanceId, Instance]
    conflicts: Conflicts
    executor: Executor
    applied: int
    next_inum: int
    reserved_upto: int
    known_max: list[int]
    committed_upto: list[int]
    recovery_tries: dict[InstanceId, int]
    timer_at: dict[InstanceId, float]
    out: Ready

    def _init_checkpoints(self) -> None:
        self.compacted = [0] * self.n  # per replica: instances up to here are gone
        self.checkpoint_floor = [0] * self.n  # what our latest durable checkpoint holds
        self.peer_floor: dict[str, list[int]] = {p: [0] * self.n for p in self.peers}
        self.checkpoint_above: set[tuple[int, int]] = set()  # executed above the floor
        self.since_checkpoint = 0  # instances executed since the last checkpoint
        self.last_kept = 0  # instances the last checkpoint rewrote
        self.checkpoints = 0

    def _restore_checkpoint(self, c: Checkpoint) -> None:
        """At start: the state machine is the image, its instances are executed."""
        self.compacted = list(c.compacted)
        self.checkpoint_floor = list(c.floor)
        self.executor.floor = list(c.floor)
        self.checkpoint_above = {(q, j) for q, j in c.executed_above}
        self.applied = c.applied
        for q in range(self.n):
            self.known_max[q] = max(self.known_max[q], c.compacted[q])
            self.committed_upto[q] = max(self.committed_upto[q], c.compacted[q])
        self.next_inum = max(self.next_inum, c.compacted[self.idx] + 1)
        self.out.restore = SnapshotImage(c.applied, 0, c.image)
        self.out.durable_floor(c.applied, self.config.replicas)

    def _in_checkpoint(self, q: int, j: int) -> bool:
        return j <= self.executor.floor[q] or (q, j) in self.checkpoint_above

    def _is_compacted(self, q: int, j: int) -> bool:
        return j <= self.compacted[q]

    def _executed_one(self) -> None:
        """After each executed instance: time for a checkpoint? A checkpoint rewrites every
        instance kept, so the next waits for at least half as many executions as the last
        one rewrote (two record writes per execution, amortized): while a replica lags
        (paused, cut off) and holds compaction back, checkpoints get rarer instead of
        costing more each (in chaos runs, fixed-interval rewrites of a growing backlog took
        replicas seconds and they stopped answering)."""
        self.since_checkpoint += 1
        if self.since_checkpoint >= max(self.opts.checkpoint_interval, self.last_kept // 2):
            self.out.want_snapshot = True

    def _peer_checkpoint(self, src: str, floor: tuple[int, ...]) -> None:
        """A peer's Sync says what its durable checkpoint holds."""
        mine = self.peer_floor.get(src)
        if mine is not None and len(floor) == self.n:
            self.peer_floor[src] = [max(a, b) for a, b in zip(mine, floor, strict=True)]

    def _checkpoint(self, image: SnapshotImage) -> None:
        """The runtime's image at our execution position: write the checkpoint, and
        compact what every replica holds in one."""
        floor = list(self.executor.floor)
        above = sorted(
            iid
            for iid, inst in self.instances.items()
            if inst.executed and iid[1] > floor[iid[0]]
        )
        # What every replica holds in a durable checkpoint, ours included (this one).
        safe = [min([floor[q], *(f[q] for f in self.peer_floor.values())]) for q in range(self.n)]
        compacted = [max(c, s) for c, s in zip(self.compacted, safe, strict=True)]
        self._compact_to(compacted)
        self.checkpoint_floor = floor
        self.checkpoint_above = set(above)
        self.since_checkpoint = 0
        self.checkpoints += 1
        record = Checkpoint(image.index, image.data, tuple(floor), tuple(above), tuple(compacted))
        kept: list[InstanceState] = [self.instances[i].record() for i in sorted(self.instances)]
        self.out.compact_to([record, Reservation(self.reserved_upto), *kept])
        # Our execution positions up to the image's are in it: never executed again.
        self.out.durable_floor(image.index, self.config.replicas)
        self.last_kept = len(kept)
        self.out.event(
            CHECKPOINT_EVENT, applied=image.index, compacted=compacted, kept=len(kept)
        )

    def _compact_to(self, compacted: list[int]) -> None:
        """Forget the instances up to `compacted` (all executed, here and everywhere)."""
        if compacted == self.compacted:
            return
        gone = [
            iid
            for iid, inst in self.instances.items()
            if iid[1] <= compacted[iid[0]] and inst.executed and inst.status == COMMITTED
        ]
        for iid in gone:
            del self.instances[iid]
            self.recovery_tries.pop(iid, None)
            self.timer_at.pop(iid, None)
            self.executor.blocked_on.pop(iid, None)
        self.compacted = compacted
        self.conflicts.forget(lambda iid: iid[1] <= compacted[iid[0]])
        # Waits on an instance that is gone are over (it was executed everywhere).
        blocked = self.executor.blocked_on
        for node in [k for k, b in blocked.items() if b[1] <= compacted[b[0]]]:
            del blocked[node]
