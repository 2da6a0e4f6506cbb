"""Which violation kinds a simnet run showed, and the faults the targeted schedules need.

The names are the checkers' kinds (labctl/checkers/base.py KINDS), so a schedule's result
states the violation a mutation declares, not simnet's wording. Simnet checks two leaders
in one term and divergence as it runs; lost writes, stale reads and lease overlaps are
judged here from what it recorded, the way the lab's checkers judge a run.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

import protocols
from protocols.base import ClientRequest
from protocols.base import events as ev
from protocols.simnet import SimNet


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
