"""Targeted schedules: for each named mutation, the one situation its classic bug needs.

Random faults rarely reach some bugs (issue 21 measured why), so a protocol may declare,
for its mutations, schedules that drive that situation on the in-memory network
(protocols/simnet.py) by hand. A schedule is `(mutate, seed) -> violation kinds`: run
with the mutation ("" for none) on a fresh network, it returns the kinds the run showed,
in the checkers' names (labctl/checkers/base.py KINDS, the names `Mutation.violations`
uses). The tests assert both halves (the violation with the mutation, none without);
`labctl selftest` falls back on them for a mutation explore did not catch in its budget.

The declaration is `Protocol.targeted = "module:ATTRIBUTE"`, a mapping from mutation name
to schedule (protocols/raft/targeted.py: `SCHEDULES`), named rather than imported so a
protocol's core never imports its own test schedules. `schedules(cls)` reads it.

This module is protocol-side on purpose: a schedule is written in simnet's vocabulary
(isolate, crash, clocks, a held message), which the protocol author already tests with,
not in the lab's fault vocabulary (faults/model.py: roles, links, processes), which
needs a lab to mean anything. So protocols import nothing of labctl, faults or nodes,
and what a schedule needs beyond simnet's own faults (a power loss, a hold) is here.
Judging a run (`kinds`) is here too: it reads only what simnet recorded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

import msgspec

import protocols
from protocols.base import ClientRequest, Protocol
from protocols.base import events as ev
from protocols.simnet import SimNet

Schedule = Callable[[str, int], set[str]]  # (mutate, seed) -> the violation kinds shown


def schedules(cls: type[Protocol]) -> Mapping[str, Schedule]:
    """The targeted schedules `cls` declares (`Protocol.targeted`), by mutation name;
    empty when it declares none. A declaration that does not resolve raises ImportError
    or AttributeError: it is the protocol's bug, not a missing schedule."""
    if not cls.targeted:
        return {}
    module, _, attribute = cls.targeted.partition(":")
    found = getattr(importlib.import_module(module), attribute or "SCHEDULES")
    if not isinstance(found, Mapping):
        raise TypeError(f"{cls.__name__}.targeted = {cls.targeted!r} is not a mapping")
    return found


def kinds(net: SimNet) -> set[str]:
    """The violation kinds this run showed: simnet's run-time checks and stale reads."""
    found: set[str] = set()
    for text in net.violations:
        if "two leaders in term" in text:
            found.add("split-brain")
        elif "divergence at index" in text or "conflict order on key" in text:
            found.add("divergence")
        else:
            found.add("other")
    if net.record and net.stale_reads():
        found.add("nonlinearizable")
    if lost_writes(net):
        found.add("lost-write")
    if lease_overlaps(net):
        found.add("lease-overlap")
    return found


def lost_writes(net: SimNet) -> list[str]:
    """Writes acknowledged "ok" absent from the final state: applied by no running
    replica, or missing from a final leader that applied past the index the reply named
    (the lab's lost-write checker, on simnet's applied lists)."""
    writes = {s.msg.command.request_id for s in net.sent
              if isinstance(s.msg, ClientRequest) and s.msg.command.op != "get"}  # fmt: skip
    applied = {i: net.applied(i) for i in net.alive()}
    # The final leaders: running nodes that led in the highest term anyone led in.
    terms = [(e.data["term"], e.node) for e in net.events
             if e.kind == ev.BECAME_LEADER and e.node in applied]  # fmt: skip
    top = max((t for t, _ in terms), default=None)
    finals = {n for t, n in terms if t == top}
    lost = []
    for _, _, reply in net.replies:
        if reply.status != "ok" or reply.seq is None or reply.request_id not in writes:
            continue
        holds = {i: any(c.request_id == reply.request_id for _, _, c in a)
                 for i, a in applied.items()}  # fmt: skip
        final = [i for i in finals if applied[i] and applied[i][-1][0] >= reply.seq]
        if not any(holds.values()) or (final and not any(holds[i] for i in final)):
            lost.append(reply.request_id)
    return lost


def lease_overlaps(net: SimNet) -> list[tuple[str, str]]:
    """Pairs of nodes that held a valid lease at the same true time (the lab's
    lease-overlap checker, on simnet's events: expiries converted with each node's clock)."""
    held: dict[str, tuple[float, float]] = {}
    pairs = []
    for e in net.events:
        if e.kind != ev.LEASE:
            continue
        expiry = e.data.get("expiry")
        if expiry is None:
            held.pop(e.node, None)
            continue
        start, end = e.time, net.nodes[e.node].clock.to_true(expiry)
        held[e.node] = (start, end)
        for other, (s, t) in held.items():
            if other != e.node and max(start, s) < min(end, t):
                pairs.append((other, e.node))
    return pairs


def declared(protocol: str, name: str) -> set[str]:
    """The violation kinds protocol `protocol` declares for mutation `name`."""
    for m in protocols.get(protocol).mutations:
        if m.name == name:
            return set(m.violations)
    raise KeyError(f"{protocol} declares no mutation {name!r}")


def power_loss(net: SimNet, node: str) -> None:
    """Crash `node` as a power loss does: what it wrote without an fsync is gone (a plain
    crash keeps what reached the page cache, or a prefix of it)."""
    net.nodes[node].unsynced = []
    net.crash(node)


class Hold:
    """Delay the messages `match(src, dst, msg)` selects until `release()`: a delay that
    outlives whatever the test makes happen meanwhile (a re-election)."""

    def __init__(self, net: SimNet, match: Callable[[str, str, msgspec.Struct], bool]) -> None:
        self.net = net
        self.held: list[tuple[str, str, msgspec.Struct]] = []
        self.match = match
        net.filter = self._filter

    def _filter(self, src: str, dst: str, msg: msgspec.Struct) -> bool:
        if self.match(src, dst, msg):
            self.held.append((src, dst, msg))
            return False
        return True

    def release(self) -> None:
        """Stop holding; the held messages leave now, in the order they were sent."""
        self.net.filter = None
        held, self.held = self.held, []
        for src, dst, msg in held:
            self.net._send(src, dst, msg)
