"""Raft and its callers: duplicate requests, fencing tokens to the broker, bad input from
peers (dropped and counted) and misuse by the caller (raised)."""

from __future__ import annotations

import random

import pytest

from protocols.base import Command, NodeConfig
from protocols.naive import Options as NaiveOptions
from protocols.raft import Options, RaftProtocol
from protocols.raft.messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    Heartbeat,
    RequestVote,
)
from protocols.simnet import SimNet
from tests.raft_helpers import make_net


def test_a_duplicate_request_appended_twice_does_not_break_safety() -> None:
    net = make_net(3)
    leader = net.wait_leader()
    command = net.command("order", order=None)
    # A client retry that reaches the leader twice: both copies go into the log.
    net.request(leader, command)
    net.request(leader, command)
    assert net.run_until(lambda: len(net.replies_for(command.request_id)) == 2, 1.0)
    first, second = net.replies_for(command.request_id)
    assert first.status == second.status == "ok"
    # The session table answers the second with the first's result: one sequence number.
    assert first.seq == second.seq
    net.run_for(0.2)
    for node in net.ids:
        entries = [(i, c) for i, _, c in net.applied(node) if c.request_id == command.request_id]
        assert len(entries) == 2  # both committed at their own index, everywhere alike
        assert net.nodes[node].model.orders == [command.request_id]  # applied once
    assert len({tuple(net.applied(n)) for n in net.ids}) == 1
    net.check()


def test_a_committed_order_is_sent_to_the_broker_with_the_term_as_token() -> None:
    net = make_net(3, seed=2)
    leader = net.wait_leader()
    rid = net.order(leader, "o-1")
    assert net.run_until(lambda: len(net.broker) == 1 and net.reply_for(rid) is not None, 1.0)
    (_, sender, write) = net.broker[0]
    reply = net.reply_for(rid)
    assert reply is not None
    term = net.status(leader)["term"]
    assert (sender, write.token, write.node, write.seq, write.request_id) == (
        leader,
        term,
        leader,
        reply.seq,
        rid,
    )
    assert write.order is not None and write.order.order_id == "o-1"
    # A cut-off leader accepts an order but cannot commit it: nothing reaches the broker
    # from it, while the next leader's orders carry a higher token.
    net.isolate(leader)
    net.order(leader, "o-zombie")
    new = net.wait_leader(max_time=2.0, exclude=[leader])
    net.order(new, "o-2")
    assert net.run_until(lambda: len(net.broker) == 2, 1.0)
    net.run_for(1.0)
    assert [(s, w.order.order_id if w.order else None) for _, s, w in net.broker] == [
        (leader, "o-1"),
        (new, "o-2"),
    ]
    assert net.broker[1][2].token > term


def test_followers_never_write_to_the_broker() -> None:
    net = make_net(3, seed=3)
    leader = net.wait_leader()
    for i in range(5):
        net.order(leader, f"o-{i}")
    net.run_for(0.5)
    assert {sender for _, sender, _ in net.broker} == {leader}
    assert len(net.broker) == 5


def test_an_unknown_op_is_refused() -> None:
    net = make_net(3, seed=4)
    leader = net.wait_leader()
    rid = net.request(leader, net.command("delete", key="x"))
    assert net.run_until(lambda: net.reply_for(rid) is not None, 1.0)
    reply = net.reply_for(rid)
    assert reply is not None and reply.status == "fail" and "delete" in (reply.error or "")


# -- one protocol object, driven directly -------------------------------------------------


def node(me: str = "r0", **options: object) -> RaftProtocol:
    replicas = ("r0", "r1", "r2")
    return RaftProtocol(NodeConfig(me, replicas, Options(**options), random.Random(0)))


def test_bad_input_from_peers_is_dropped_and_counted() -> None:
    n = node()
    n.start(0.0, [])
    bad = [
        ("r9", Heartbeat(1, 0, 1)),  # not a replica
        ("r1", Heartbeat(-1, 0, 1)),  # negative term
        ("r1", AppendEntries(1, 5, 0, ())),  # prev term 0 at index 5
        ("r1", AppendEntries(1, 0, 0, (Entry(1, 2),))),  # entries out of place
        ("r1", AppendEntries(1, 0, 0, (Entry(7, 1),))),  # entry from a future term
        ("r1", RequestVote(1, 3, 9)),  # last term beyond its own term
        ("r1", Command("x", "c", "put")),  # not a raft message
    ]
    for src, msg in bad:
        out = n.on_message(1.0, src, msg)
        assert out.messages == [] and out.persist == []
    assert n.status()["dropped"] == len(bad)
    assert n.term == 0
    # A stale term is dropped too, but answered so an old leader learns it is deposed.
    n.on_message(1.0, "r1", Heartbeat(3, 0, 1))
    out = n.on_message(1.0, "r2", Heartbeat(2, 0, 1))
    assert out.messages == [("r2", AppendResponse(3, False, 0))]
    assert n.status()["drops"]["stale_term"] == 1


def test_a_leader_drops_an_impossible_acknowledgement() -> None:
    net = make_net(3, seed=5)
    leader = net.wait_leader()
    n = net.proto(leader)
    peer = n.peers[0]
    before = n.status()["dropped"]
    out = n.on_message(net.node_now(leader), peer, AppendResponse(n.term, True, 10_000))
    assert out.committed == [] and n.commit < 10_000
    assert n.status()["dropped"] == before + 1


def test_misuse_by_the_caller_raises() -> None:
    n = node()
    with pytest.raises(RuntimeError):
        n.on_tick(0.0)  # before start
    n.start(0.0, [])
    with pytest.raises(RuntimeError):
        n.start(0.0, [])
    with pytest.raises(TypeError):
        n.on_client(0.0, "c0", Command("x", "c0", "put"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        node().start(0.0, [Command("x", "c0", "put")])  # not a raft record
    with pytest.raises(ValueError):
        RaftProtocol(NodeConfig("r7", ("r0", "r1"), Options(), random.Random(0)))
    with pytest.raises(TypeError):
        RaftProtocol(NodeConfig("r0", ("r0",), NaiveOptions(), random.Random(0)))


def test_a_single_node_cluster_leads_and_commits_alone() -> None:
    net = SimNet(RaftProtocol, ["solo"], seed=6)
    assert net.wait_leader() == "solo"
    rid = net.put("solo", "a", "1")
    assert net.run_until(lambda: net.reply_for(rid) is not None, 1.0)
    for mode in ("quorum", "lease"):
        r = net.get("solo", "a", mode)
        assert net.run_until(lambda r=r: net.reply_for(r) is not None, 1.0)
        reply = net.reply_for(r)
        assert reply is not None and reply.value == "1"
