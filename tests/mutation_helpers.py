"""Helpers the mutation tests share: which violation kinds a simnet run showed.

The names are the checkers' kinds (labctl/checkers/base.py KINDS), so a test states the
violation a mutation declares, not simnet's wording.
"""

from __future__ import annotations

import protocols
from protocols.base import ClientRequest
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
    return found


def lost_writes(net: SimNet) -> list[str]:
    """Writes acknowledged "ok" that no running replica has applied at the index the
    reply named (a later leader overwrote them), once the run is over."""
    writes = {s.msg.command.request_id for s in net.sent
              if isinstance(s.msg, ClientRequest) and s.msg.command.op != "get"}  # fmt: skip
    alive = net.alive()
    at = {i: {idx: c.request_id for idx, _, c in net.applied(i)} for i in alive}
    lost = []
    for _, _, reply in net.replies:
        if reply.status != "ok" or reply.seq is None or reply.request_id not in writes:
            continue
        holders = [i for i in alive if reply.seq in at[i]]
        if holders and all(at[i][reply.seq] != reply.request_id for i in holders):
            lost.append(reply.request_id)
    return lost


def declared(protocol: str, name: str) -> set[str]:
    """The violation kinds protocol `protocol` declares for mutation `name`."""
    for m in protocols.get(protocol).mutations:
        if m.name == name:
            return set(m.violations)
    raise KeyError(f"{protocol} declares no mutation {name!r}")
