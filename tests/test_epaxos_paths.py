"""EPaxos commit paths on the simulated network: the fast path without conflicts, the slow
path under conflicts, thrifty PreAccepts, batching, reads, orders, 3 and 5 replicas."""

from __future__ import annotations

import pytest

from protocols.base import BrokerWrite, ConfigError, decode_options
from protocols.epaxos import EPaxosProtocol, Options
from protocols.epaxos.messages import Accept, PreAccept, PreAcceptReply, well_formed
from tests.epaxos_helpers import (
    agreement_problems,
    applied_everywhere,
    applied_ids,
    make_net,
    proto,
    write,
)


@pytest.mark.parametrize("n", [3, 5])
def test_fast_path_commits_without_conflicts(n: int) -> None:
    net = make_net(n, seed=3, thrifty=False)
    for i in range(2 * n):
        node = net.ids[i % n]
        reply = write(net, node, f"key{i}", str(i))
        assert reply.node == node  # whoever took the request led it and answered
        assert net.run_until(lambda r=reply: applied_everywhere(net, r.request_id), 1.0)
    total_fast = sum(proto(net, i).fast for i in net.ids)
    assert total_fast == 2 * n
    assert sum(proto(net, i).slow for i in net.ids) == 0
    # One PreAccept to every peer per instance, never an Accept.
    assert len(net.messages_of("PreAccept")) == 2 * n * (n - 1)
    assert net.messages_of("Accept") == []
    assert len(net.messages_of("Commit")) == 2 * n * (n - 1)
    status = net.status(net.ids[0])
    assert status["fast_path_ratio"] == 1.0
    assert status["role"] == "replica" and status["leader"] is None
    assert all(net.kv(i) == net.kv(net.ids[0]) for i in net.ids)
    net.check()


@pytest.mark.parametrize("n", [3, 5])
def test_slow_path_under_conflicting_writes(n: int) -> None:
    net = make_net(n, seed=4)
    rids = [net.put(net.ids[i % n], "hot", str(i)) for i in range(4 * n)]
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 3.0)
    assert all(net.reply_for(r).status == "ok" for r in rids)  # type: ignore[union-attr]
    assert net.run_until(lambda: all(applied_everywhere(net, r) for r in rids), 1.0)
    assert sum(proto(net, i).slow for i in net.ids) > 0
    assert net.messages_of("Accept")
    # The conflict-order invariant: every replica applied the writes in one order.
    order = applied_ids(net, net.ids[0], "hot")
    assert sorted(order) == sorted(rids)
    assert all(applied_ids(net, i, "hot") == order for i in net.ids)
    assert len({net.kv(i)["hot"] for i in net.ids}) == 1
    assert agreement_problems(net) == []
    net.check()


def test_thrifty_sends_pre_accept_to_a_fast_quorum_only() -> None:
    net = make_net(5, seed=5, thrifty=True)
    write(net, "r0", "a", "1")
    pre = net.messages_of("PreAccept")
    # F = 2: the fast quorum is 3 replicas, the leader and two peers.
    assert len(pre) == 2
    assert {s.dst for s in pre} == {"r1", "r2"}
    assert proto(net, "r0").fast == 1
    assert net.run_until(lambda: all(net.kv(i) == {"a": "1"} for i in net.ids), 1.0)


def test_thrifty_falls_back_to_the_others_when_the_quorum_is_silent() -> None:
    net = make_net(5, seed=6, thrifty=True)
    net.isolate("r1")
    reply = write(net, "r0", "a", "1", max_time=1.0)
    assert reply.status == "ok"
    # The resend went to every peer that had not answered, r3 and r4 among them.
    assert {"r3", "r4"} <= {s.dst for s in net.messages_of("PreAccept")}
    net.check()


def test_batching_puts_waiting_requests_into_one_instance() -> None:
    net = make_net(3, seed=7, max_inflight=1, batch=8)
    rids = [net.put("r0", f"k{i}", str(i)) for i in range(9)]
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 2.0)
    p = proto(net, "r0")
    own = [inst for (r, _), inst in p.instances.items() if r == p.idx]
    # The first request went alone; the eight that waited behind it share one instance.
    assert sorted(len(inst.cmds or ()) for inst in own) == [1, 8]
    assert net.run_until(lambda: all(len(net.kv(i)) == 9 for i in net.ids), 1.0)
    net.check()


def test_reads_go_through_consensus_in_every_mode() -> None:
    net = make_net(3, seed=8, thrifty=False)
    write(net, "r0", "x", "1")
    for mode, node in (("log", "r1"), ("quorum", "r2"), ("lease", "r0")):
        rid = net.get(node, "x", read_mode=mode)
        assert net.run_until(lambda r=rid: net.reply_for(r) is not None, 1.0)
        reply = net.reply_for(rid)
        assert reply is not None and (reply.status, reply.value) == ("ok", "1")
    assert len(net.messages_of("PreAccept")) == 4 * 2
    net.check()


def test_orders_reach_the_broker_with_token_zero() -> None:
    net = make_net(3, seed=9)
    rid = net.order("r1", "o-1")
    assert net.run_until(lambda: net.reply_for(rid) is not None and net.broker, 1.0)
    net.run_for(0.1)
    assert len(net.broker) == 1
    _, src, bw = net.broker[0]
    assert isinstance(bw, BrokerWrite)
    assert (src, bw.token, bw.node, bw.request_id) == ("r1", 0, "r1", rid)
    assert bw.order is not None and bw.order.order_id == "o-1"


def test_unknown_ops_fail_at_once() -> None:
    net = make_net(3, seed=10)
    rid = net.request("r0", net.command("drop_table", key="x"))
    assert net.run_until(lambda: net.reply_for(rid) is not None, 0.5)
    assert net.reply_for(rid).status == "fail"  # type: ignore[union-attr]
    assert net.messages_of("PreAccept") == []


def test_malformed_and_unexpected_messages_are_counted_not_raised() -> None:
    net = make_net(3, seed=11)
    p = proto(net, "r0")
    bad = [
        ("r1", PreAccept(0, 7, 1, (), 0, (0, 0, 0))),  # replica out of range
        ("r1", PreAccept(0, 1, 0, (), 0, (0, 0, 0))),  # instance number 0
        ("r1", PreAccept(0, 1, 1, (), 0, (0, 0))),  # deps of the wrong length
        ("r1", PreAccept(-1, 1, 1, (), 0, (0, 0, 0))),  # negative ballot
        ("r1", PreAcceptReply(0, 1, 1, True, 0, ())),  # ok without attributes
        ("r1", Accept(0, 1, 1, (net.command("rm", key="x"),), 0, (0, 0, 0))),  # bad op
        ("stranger", PreAccept(0, 1, 1, (), 0, (0, 0, 0))),  # unknown replica
        ("r1", BrokerWrite(0, "r1", 1, "x")),  # not a peer message
    ]
    for src, msg in bad:
        ready = p.on_message(net.node_now("r0"), src, msg)
        assert ready.messages == [] and ready.persist == []
    assert net.status("r0")["dropped"] == len(bad)
    assert not well_formed(PreAccept(0, 0, 1, (), 0, (0, -1, 0)), 3)
    # Still working afterwards.
    write(net, "r0", "x", "1")


def test_options_validate() -> None:
    opts = decode_options(Options, {"recovery_timeout": "300ms", "thrifty": "yes"})
    assert isinstance(opts, Options) and opts.recovery_timeout == 0.3 and opts.thrifty
    for raw in (
        {"recovery_timeout": 0},
        {"resend_interval": "1s"},
        {"batch": 0},
        {"max_inflight": 0},
        {"recovery_timeout": "inf"},
        {"fast": True},
    ):
        with pytest.raises(ConfigError):
            decode_options(Options, raw)


def test_class_declares_per_key_ordering_and_exactly_once() -> None:
    assert EPaxosProtocol.ordering == "per_key"
    assert EPaxosProtocol.exactly_once is True
    assert EPaxosProtocol.name == "epaxos"
