"""Helpers the EPaxos test files share: a seeded network, writes, and agreement checks."""

from __future__ import annotations

from typing import Any

from protocols.base import ClientReply
from protocols.epaxos import EPaxosProtocol
from protocols.epaxos.invariants import committed_attributes, committed_on_disk
from protocols.epaxos.manual import Manual
from protocols.simnet import SimNet

__all__ = ["Manual"]  # by hand, for schedules too precise for timers (protocols/*/targeted.py)


def make_net(n: int = 3, seed: int = 1, latency: Any = None, **options: object) -> SimNet:
    extra = {} if latency is None else {"latency": latency}
    return SimNet(EPaxosProtocol, n, seed=seed, options=options, **extra)


def proto(net: SimNet, node: str) -> EPaxosProtocol:
    p = net.proto(node)
    assert isinstance(p, EPaxosProtocol)
    return p


def write(net: SimNet, node: str, key: str, value: str, max_time: float = 3.0) -> ClientReply:
    """Write through `node` and insist on an ok."""
    rid = net.put(node, key, value)
    assert net.run_until(lambda: net.reply_for(rid) is not None, max_time), f"{rid} unanswered"
    reply = net.reply_for(rid)
    assert reply is not None and reply.status == "ok", reply
    return reply


def applied_ids(net: SimNet, node: str, key: str | None = None) -> list[str]:
    return [c.request_id for _, _, c in net.applied(node) if key is None or c.key == key]


def applied_everywhere(net: SimNet, rid: str) -> bool:
    return all(rid in applied_ids(net, n) for n in net.alive())


def agreement_problems(net: SimNet) -> list[str]:
    """Committed attributes that differ between replicas, live state and disks both."""
    live = {i: proto(net, i) for i in net.alive()}
    disks = {i: node.disk for i, node in net.nodes.items()}
    return committed_attributes(live) + committed_on_disk(disks)
