"""Helpers the Raft test files share: a seeded network and a client that writes."""

from __future__ import annotations

from typing import Any

from protocols.base import ClientReply
from protocols.raft import RaftProtocol
from protocols.simnet import SimNet


def make_net(n: int = 3, seed: int = 1, latency: Any = None, **options: object) -> SimNet:
    extra = {} if latency is None else {"latency": latency}
    return SimNet(RaftProtocol, n, seed=seed, options=options, **extra)


def write(net: SimNet, node: str, key: str, value: str, max_time: float = 3.0) -> ClientReply:
    """Write through `node` and insist on an ok."""
    rid = net.put(node, key, value)
    assert net.run_until(lambda: net.reply_for(rid) is not None, max_time), f"{rid} unanswered"
    reply = net.reply_for(rid)
    assert reply is not None and reply.status == "ok", reply
    return reply


def acknowledged(net: SimNet, rid: str) -> bool:
    return any(r.status == "ok" for r in net.replies_for(rid))


def write_anywhere(net: SimNet, key: str, value: str, max_time: float = 10.0) -> ClientReply:
    """Keep offering the write to whoever leads until one acknowledges it (a client)."""
    end = net.now + max_time
    command = net.command("put", key=key, value=value)
    while net.now < end:
        leader = net.leader()
        if leader is not None:
            net.request(leader, command)
        # Wait for an ok (a "not_leader" answer is no reason to stop waiting early).
        if net.run_until(lambda: acknowledged(net, command.request_id), 0.3):
            return next(r for r in net.replies_for(command.request_id) if r.status == "ok")
    raise AssertionError(f"write {key}={value} not acknowledged in {max_time}s")
