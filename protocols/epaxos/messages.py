"""EPaxos wire messages and the WAL record, with the `well_formed` check.

An instance is named by (replica index, instance number >= 1). Its attributes are `seq`
and `deps`, a vector with one entry per replica: `deps[q] = k` means "after every instance
of replica q numbered up to k" (the dependency form of the EPaxos reference code; 0 is
none). An instance holding no command (`cmds == ()`) is a no-op from recovery.

Ballots are integers `number * N + replica index`; ballot 0 is the command leader's own
initial ballot (an instance id names its leader, so no one else can use it), every
recovery ballot has number >= 1. Every reply echoes the instance id and ballot it answers.
"""

from __future__ import annotations

import msgspec

from protocols.base import OPS, Command

# Instance status, ordered: a replica's knowledge of an instance only moves up.
NONE = 0  # only a promise (Prepare) is known
PREACCEPTED = 1
ACCEPTED = 2
COMMITTED = 3

Cmds = tuple[Command, ...]
Deps = tuple[int, ...]


class PreAccept(msgspec.Struct, frozen=True, tag=True):
    ballot: int
    replica: int
    inum: int
    cmds: Cmds
    seq: int
    deps: Deps


class PreAcceptReply(msgspec.Struct, frozen=True, tag=True):
    """ok: the sender pre-accepted with (seq, deps); otherwise `ballot` is its promise."""

    ballot: int
    replica: int
    inum: int
    ok: bool
    seq: int = 0
    deps: Deps = ()


class Accept(msgspec.Struct, frozen=True, tag=True):
    ballot: int
    replica: int
    inum: int
    cmds: Cmds
    seq: int
    deps: Deps


class AcceptReply(msgspec.Struct, frozen=True, tag=True):
    ballot: int
    replica: int
    inum: int
    ok: bool


class Commit(msgspec.Struct, frozen=True, tag=True):
    replica: int
    inum: int
    cmds: Cmds
    seq: int
    deps: Deps


class Prepare(msgspec.Struct, frozen=True, tag=True):
    ballot: int
    replica: int
    inum: int


class PrepareReply(msgspec.Struct, frozen=True, tag=True):
    """The sender's state of the instance. `vballot` is the ballot it last voted in
    (pre-accepted or accepted), distinct from the promise `ballot`: recovery picks the
    attributes of the highest vote ballot (Sutra 2019). `orig`: the attributes are the
    command leader's own, unchanged (the fast path's evidence). `forgetful`: the sender is
    the command leader and restarted since it voted: it may have fast-committed the
    instance and lost the record, so its answer proves nothing about ballot 0."""

    ballot: int
    replica: int
    inum: int
    ok: bool
    status: int = NONE
    vballot: int = 0
    orig: bool = False
    cmds: Cmds | None = None
    seq: int = 0
    deps: Deps = ()
    forgetful: bool = False


class TryPreAccept(msgspec.Struct, frozen=True, tag=True):
    ballot: int
    replica: int
    inum: int
    cmds: Cmds
    seq: int
    deps: Deps


class TryPreAcceptReply(msgspec.Struct, frozen=True, tag=True):
    """Refusal names the conflicting instance (possibly the instance itself, if it is
    accepted there) and whether it is committed; conflict_replica -1: ballot refusal."""

    ballot: int
    replica: int
    inum: int
    ok: bool
    conflict_replica: int = -1
    conflict_inum: int = 0
    conflict_committed: bool = False


class Sync(msgspec.Struct, frozen=True, tag=True):
    """Anti-entropy: per replica, the highest instance number the sender knows (or, with
    a backlog, the top of its committed prefix). The receiver answers with Commits of what
    it has committed above those numbers, so a replica that was down or cut off when a
    Commit went out still learns it."""

    known: tuple[int, ...]
    # Per replica, every instance up to here is executed in the sender's latest durable
    # checkpoint (checkpoint.py): what every replica holds so may be compacted.
    floor: tuple[int, ...] = ()


MESSAGES: tuple[type[msgspec.Struct], ...] = (
    PreAccept,
    PreAcceptReply,
    Accept,
    AcceptReply,
    Commit,
    Prepare,
    PrepareReply,
    TryPreAccept,
    TryPreAcceptReply,
    Sync,
)


class InstanceState(msgspec.Struct, frozen=True, tag=True):
    """Everything durable about one instance, written whenever a promise, a vote or a
    commit changes it; on replay the last record of an instance wins."""

    replica: int
    inum: int
    status: int
    ballot: int
    vballot: int
    orig: bool
    cmds: Cmds | None
    seq: int
    deps: Deps


class Reservation(msgspec.Struct, frozen=True, tag=True):
    """This replica may have sent PreAccepts for its own instances up to `upto` (they leave
    while its fsync runs): after a restart it never reuses a number up to there, and
    recovers the ones it cannot find on its disk."""

    upto: int


class Checkpoint(msgspec.Struct, frozen=True, tag=True):
    """The state machine image at execution position `applied`, and which instances it
    holds: per replica every one up to `floor`, and `executed_above` (executed out of
    number order). Instances up to `compacted` are gone from memory and the WAL. Always
    the first record of a compacted WAL (checkpoint.py)."""

    applied: int
    image: bytes
    floor: tuple[int, ...]
    executed_above: tuple[tuple[int, int], ...]
    compacted: tuple[int, ...]


RECORDS: tuple[type[msgspec.Struct], ...] = (InstanceState, Reservation, Checkpoint)

_WITH_ATTRS = (PreAccept, Accept, Commit, TryPreAccept)


def _cmds_ok(cmds: Cmds | None) -> bool:
    return cmds is None or all(c.op in OPS for c in cmds)


def well_formed(msg: msgspec.Struct, n: int) -> bool:
    """False for a message no correct replica of an `n`-replica cluster could send."""
    if isinstance(msg, Sync):
        return (
            len(msg.known) == n
            and min(msg.known, default=0) >= 0
            and len(msg.floor) in (0, n)
            and min(msg.floor, default=0) >= 0
        )
    if not 0 <= getattr(msg, "replica", -1) < n or getattr(msg, "inum", 0) < 1:
        return False
    if getattr(msg, "ballot", 0) < 0 or getattr(msg, "seq", 0) < 0:
        return False
    deps = getattr(msg, "deps", None)
    if deps is not None and deps != () and (len(deps) != n or min(deps) < 0):
        return False
    if isinstance(msg, _WITH_ATTRS):
        return len(msg.deps) == n and _cmds_ok(msg.cmds)
    if isinstance(msg, PrepareReply):
        return (
            NONE <= msg.status <= COMMITTED
            and msg.vballot >= 0
            and _cmds_ok(msg.cmds)
            and (msg.status == NONE or (msg.cmds is not None and len(msg.deps) == n))
        )
    if isinstance(msg, PreAcceptReply):
        return not msg.ok or len(msg.deps) == n
    if isinstance(msg, TryPreAcceptReply):
        return -1 <= msg.conflict_replica < n and msg.conflict_inum >= 0
    return isinstance(msg, (AcceptReply, Prepare))
