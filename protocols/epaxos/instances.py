"""The instance space and the conflict index.

`Instance` is one replica's knowledge of one instance: the attributes it voted for, its
promised ballot and the ballot of its last vote, kept apart (Sutra 2019: with a single
ballot variable, recovery can pick stale attributes). `Conflicts` is the paper's
"conflicts" map: per key, the latest instance of each replica that touches it, and the
highest seq seen on it, so computing attributes costs O(keys * replicas), not O(history).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from protocols.base import Command
from protocols.epaxos.messages import NONE, Cmds, Deps, InstanceState

InstanceId = tuple[int, int]  # (replica index, instance number)


@dataclass(slots=True)
class Instance:
    replica: int
    inum: int
    status: int = NONE
    ballot: int = 0  # promised: no vote in a lower ballot
    vballot: int = 0  # the ballot of the last vote (pre-accept or accept)
    orig: bool = False  # attributes are the command leader's own (fast path evidence)
    cmds: Cmds | None = None  # None: command unknown; (): a no-op
    seq: int = 0
    deps: Deps = ()
    executed: bool = False
    indexed: bool = False  # listed in the conflict index's per-key instance lists
    # Our own instance after a restart, not known committed: we cannot vouch that we never
    # decided it in ballot 0 (Commit records are written lazily). Not persisted: it is
    # derived again at every start.
    forgetful: bool = False

    @property
    def id(self) -> InstanceId:
        return (self.replica, self.inum)

    def record(self) -> InstanceState:
        return InstanceState(
            self.replica,
            self.inum,
            self.status,
            self.ballot,
            self.vballot,
            self.orig,
            self.cmds,
            self.seq,
            self.deps,
        )

    @classmethod
    def from_record(cls, r: InstanceState) -> Instance:
        return cls(r.replica, r.inum, r.status, r.ballot, r.vballot, r.orig, r.cmds, r.seq, r.deps)


def keys_of(cmds: Cmds | None) -> set[str]:
    """Keys an instance touches: all commands on one key interfere (gets included), and
    orders all share one key of their own, so they are ordered among themselves."""
    return {key_of(c) for c in cmds or ()}


def key_of(c: Command) -> str:
    return "\x00order" if c.op == "order" else c.key


@dataclass(slots=True)
class KeyConflicts:
    latest: list[int]  # per replica, its highest instance number touching the key
    max_seq: int = 0
    instances: list[InstanceId] = field(default_factory=list)  # every one, for TryPreAccept
    # Per replica, its highest compacted instance touching the key (empty: none yet): what
    # TryPreAccept can still say of instances that are gone (checkpoint.py).
    forgotten: list[int] = field(default_factory=list)


class Conflicts:
    def __init__(self, n: int) -> None:
        self.n = n
        self.keys: dict[str, KeyConflicts] = {}

    def attributes(self, cmds: Cmds, seq: int, deps: Deps, skip: InstanceId) -> tuple[int, Deps]:
        """(seq, deps) raised to cover every known interfering instance but `skip`."""
        out = list(deps) if deps else [0] * self.n
        replica, inum = skip
        for key in keys_of(cmds):
            kc = self.keys.get(key)
            if kc is None:
                continue
            seq = max(seq, kc.max_seq + 1)
            for q, latest in enumerate(kc.latest):
                if q == replica and latest == inum:
                    continue  # the instance itself, seen before (a resend or recovery)
                if latest > out[q]:
                    out[q] = latest
        return seq, tuple(out)

    def add(self, inst: Instance) -> None:
        for key in keys_of(inst.cmds):
            kc = self.keys.get(key)
            if kc is None:
                kc = self.keys[key] = KeyConflicts([0] * self.n)
            if inst.inum > kc.latest[inst.replica]:
                kc.latest[inst.replica] = inst.inum
            if inst.seq > kc.max_seq:
                kc.max_seq = inst.seq
            if not inst.indexed:
                kc.instances.append(inst.id)
        if inst.cmds:
            inst.indexed = True

    def forget(self, gone: Callable[[InstanceId], bool]) -> None:
        """Drop compacted instances from the per-key lists (latest and max_seq stay, and
        `forgotten` remembers the highest one dropped per replica)."""
        for kc in self.keys.values():
            kept = []
            for i in kc.instances:
                if not gone(i):
                    kept.append(i)
                    continue
                if not kc.forgotten:
                    kc.forgotten = [0] * self.n
                if i[1] > kc.forgotten[i[0]]:
                    kc.forgotten[i[0]] = i[1]
            kc.instances = kept

    def forgotten_conflict(self, cmds: Cmds, deps: Deps) -> InstanceId | None:
        """A compacted instance on the keys of `cmds` that `deps` do not cover, or None.
        Only an interfering one counts: a compacted instance on other keys says nothing
        about these attributes. (After a restart the index is rebuilt from the kept
        instances and knows none: see recovery.py on why missing one is safe.)"""
        for key in sorted(keys_of(cmds)):
            kc = self.keys.get(key)
            if kc is None or not kc.forgotten:
                continue
            for q, j in enumerate(kc.forgotten):
                if j > deps[q]:
                    return q, j
        return None

    def on_keys(self, cmds: Cmds) -> Iterator[InstanceId]:
        """Every instance recorded on the keys of `cmds`, newest first per key (the
        TryPreAccept path looks for one conflict: it is among the instances concurrent
        with the one recovered, and a hot key's list holds its whole history)."""
        for key in sorted(keys_of(cmds)):
            kc = self.keys.get(key)
            if kc is not None:
                yield from reversed(kc.instances)
