"""Helpers the PBFT test files share: a seeded network and a byzantine-tolerant client
that sends each request to every replica and believes f+1 matching replies."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from protocols.base import Command
from protocols.pbft import PbftProtocol
from protocols.simnet import SimNet

Answer = tuple[str, int | None, str | None, str | None]  # (status, seq, value, error)


def make_net(n: int = 4, seed: int = 1, **options: Any) -> SimNet:
    return SimNet(PbftProtocol, n, seed=seed, options=options)


def fault_bound(net: SimNet) -> int:
    return (len(net.ids) - 1) // 3


def send_all(net: SimNet, command: Command) -> str:
    """What a PBFT client does: the request goes to every replica."""
    for node in net.ids:
        net.request(node, command)
    return command.request_id


def put_all(net: SimNet, key: str, value: str, client: str = "c0") -> str:
    return send_all(net, net.command("put", client, key=key, value=value))


def answers(net: SimNet, rid: str, exclude: tuple[str, ...] = ()) -> dict[Answer, set[str]]:
    """Distinct replicas per answer, the way nodes/workload.py counts matching replies."""
    said: dict[str, Answer] = {}
    for r in net.replies_for(rid):
        if r.node not in exclude:
            said[r.node] = (r.status, r.seq, r.value, r.error)
    out: dict[Answer, set[str]] = defaultdict(set)
    for node, answer in said.items():
        out[answer].add(node)
    return dict(out)


def accepted(net: SimNet, rid: str) -> Answer | None:
    """The answer f+1 distinct replicas agree on, if any."""
    for answer, nodes in answers(net, rid).items():
        if len(nodes) >= fault_bound(net) + 1:
            return answer
    return None


def wait_accepted(net: SimNet, rid: str, max_time: float = 3.0) -> Answer:
    assert net.run_until(lambda: accepted(net, rid) is not None, max_time), (
        f"{rid}: no f+1 matching replies by t={net.now:.3f}: {answers(net, rid)}"
    )
    answer = accepted(net, rid)
    assert answer is not None
    return answer


def write(net: SimNet, key: str, value: str, max_time: float = 3.0) -> Answer:
    """A put through every replica that must be accepted, with status ok."""
    answer = wait_accepted(net, put_all(net, key, value), max_time)
    assert answer[0] == "ok" and answer[2] == value, answer
    return answer


def applied_ids(net: SimNet, node: str) -> list[str]:
    return [c.request_id for _, _, c in net.applied(node)]


def status(net: SimNet, node: str) -> dict[str, Any]:
    return net.status(node)
