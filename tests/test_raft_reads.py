"""Raft reads (thesis chapter 6): through the log, ReadIndex ("quorum") and leases."""

from __future__ import annotations

import random

from protocols.base import ClientReply
from protocols.base import events as ev
from protocols.raft.messages import AppendResponse
from protocols.simnet import SimNet
from tests.raft_helpers import make_net, write

ET = 0.15


def read(net: SimNet, node: str, key: str, mode: str, max_time: float = 1.0) -> ClientReply | None:
    rid = net.get(node, key, mode)
    net.run_until(lambda: net.reply_for(rid) is not None, max_time)
    return net.reply_for(rid)


def test_log_read_goes_through_the_log() -> None:
    net = make_net()
    leader = net.wait_leader()
    w = write(net, leader, "x", "1")
    r = read(net, leader, "x", "log")
    assert r is not None and (r.status, r.value) == ("ok", "1")
    assert r.seq is not None and w.seq is not None and r.seq > w.seq  # an entry of its own


def test_quorum_and_lease_reads_return_the_latest_write() -> None:
    net = make_net()
    leader = net.wait_leader()
    w = write(net, leader, "x", "1")
    for mode in ("quorum", "lease"):
        r = read(net, leader, "x", mode)
        assert r is not None and (r.status, r.value, r.seq) == ("ok", "1", w.seq)


def test_a_follower_answers_not_leader_with_the_leader() -> None:
    net = make_net()
    leader = net.wait_leader()
    follower = next(i for i in net.ids if i != leader)
    for mode in ("log", "quorum", "lease"):
        r = read(net, follower, "x", mode)
        assert r is not None and (r.status, r.leader, r.node) == ("not_leader", leader, follower)
    rid = net.put(follower, "x", "1")
    net.run_until(lambda: net.reply_for(rid) is not None, 1.0)
    assert net.reply_for(rid) == ClientReply(rid, "not_leader", follower, leader=leader)


def test_quorum_read_after_a_partition_does_not_return_stale_data() -> None:
    for check_quorum in (True, False):
        net = make_net(5, seed=2, check_quorum=check_quorum)
        old = net.wait_leader()
        write(net, old, "x", "1")
        net.isolate(old)  # clients still reach it
        stale = net.get(old, "x", "quorum")  # it still believes it leads
        new = net.wait_leader(max_time=2.0, exclude=[old])
        write(net, new, "x", "2")
        net.run_for(2.0)
        # The old leader cannot confirm its leadership, so it never answers with "1":
        # with check-quorum it gives up and says so, without it the read just waits.
        answers = net.replies_for(stale)
        assert all(r.status == "not_leader" for r in answers)
        assert bool(answers) == check_quorum
        fresh = read(net, new, "x", "quorum")
        assert fresh is not None and fresh.value == "2"
        assert not net.stale_reads()


def test_lease_read_is_served_without_messages() -> None:
    net = make_net(3, seed=3)
    leader = net.wait_leader()
    write(net, leader, "x", "1")
    net.run_for(0.1)
    assert net.status(leader)["lease_expiry"] > net.node_now(leader)
    for mode, peer_messages in (("lease", 0), ("quorum", 2)):
        rid = net.get(leader, "x", mode)
        assert net.run_until(lambda r=rid: net.reply_for(r) is not None, 1.0)
        (answer,) = [s for s in net.sent if s.msg == net.reply_for(rid)]
        if mode == "lease":
            # Answered in the same step the request arrived: no heartbeat round.
            arrived = answer.time
        else:
            arrived = max(s.time for s in net.sent if getattr(s.msg, "command", None)
                          and s.msg.command.request_id == rid)  # fmt: skip
        caused = [
            s
            for s in net.sent
            if s.src == leader and s.dst in net.ids and arrived <= s.time <= answer.time
            and type(s.msg).__name__ == "Heartbeat"
        ]  # fmt: skip
        assert len(caused) == peer_messages, (mode, caused)


def test_lease_lapses_when_the_leader_is_cut_off() -> None:
    net = make_net(3, seed=4)
    leader = net.wait_leader()
    write(net, leader, "x", "1")
    net.run_for(0.1)
    expiry = net.status(leader)["lease_expiry"]
    net.isolate(leader)
    assert net.run_until(lambda: net.node_now(leader) > expiry, 1.0)
    net.run_for(0.001)
    assert net.status(leader)["lease_expiry"] is None
    lost = [e for e in net.events_of(ev.LEASE, leader) if e.data["expiry"] is None]
    assert lost
    # A read now cannot be served from the lapsed lease: it falls back to ReadIndex,
    # which a cut-off leader cannot complete, and check-quorum ends its leadership.
    rid = net.get(leader, "x", "lease")
    net.run_for(2 * ET)
    assert [r.status for r in net.replies_for(rid)] in ([], ["not_leader"])
    assert net.status(leader)["role"] != "leader"


def test_lease_lasts_an_election_timeout_shortened_by_the_drift_bound() -> None:
    net = make_net(3, seed=5, max_drift=0.25)
    leader = net.wait_leader()
    net.run_for(0.5)
    leases = [e for e in net.events_of(ev.LEASE, leader) if e.data["expiry"] is not None]
    assert leases
    for e in leases:
        remaining = e.data["expiry"] - e.time  # node clock == true time here
        # It started when the round was sent, at most a round trip before the event.
        assert ET / 1.25 - 0.01 <= remaining <= ET / 1.25


def test_a_new_leaders_read_waits_for_its_first_commit() -> None:
    net = make_net(3, seed=6)
    first = net.wait_leader()
    w = write(net, first, "x", "1")
    # Entries of the next leader never get acknowledged, so its empty entry cannot commit.
    net.filter = lambda src, dst, msg: not (isinstance(msg, AppendResponse) and dst != first)
    net.crash(first)
    second = net.wait_leader(max_time=2.0, exclude=[first])
    node = net.proto(second)
    assert node.log.term_at(node.commit) != node.term
    rids = [net.get(second, "x", mode) for mode in ("quorum", "lease")]
    net.run_for(1.0)
    assert all(net.reply_for(r) is None for r in rids)
    assert net.status(second)["role"] == "leader"  # heartbeats still get through
    net.filter = None
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 1.0)
    for r in rids:
        reply = net.reply_for(r)
        assert reply is not None and (reply.status, reply.value) == ("ok", "1")
        assert reply.seq is not None and w.seq is not None and reply.seq >= w.seq


def lease_intervals(net: SimNet) -> list[tuple[str, int, float, float]]:
    """(node, term, from, to) in true time: from each lease event to its expiry, cut short
    when the node announces the lease lost or stops leading."""
    out = []
    for node in net.ids:
        clock = net.nodes[node].clock
        events = [e for e in net.events if e.node == node]
        for k, e in enumerate(events):
            if e.kind != ev.LEASE or e.data["expiry"] is None:
                continue
            end = clock.to_true(e.data["expiry"])
            for later in events[k + 1 :]:
                lost = later.kind == ev.LEASE and later.data["expiry"] is None
                if lost or later.kind == ev.STEPPED_DOWN:
                    end = min(end, later.time)
                    break
            out.append((node, e.data["term"], e.time, end))
    return out


def test_leases_never_overlap_with_clock_drift_within_the_bound() -> None:
    rng = random.Random(7)
    net = make_net(5, seed=7)
    for node in net.ids:
        net.set_clock(node, drift=rng.uniform(-0.02, 0.02))  # max_drift is 0.05
    net.wait_leader()
    for _ in range(60):
        roll = rng.random()
        if roll < 0.3:
            leader = net.leader()
            if leader is not None:
                net.isolate(leader)
        elif roll < 0.5:
            net.heal()
        elif roll < 0.6:
            victim = rng.choice(net.ids)
            if net.nodes[victim].alive:
                net.crash(victim)
        else:
            net.restart_all()
        net.run_for(rng.uniform(0.05, 0.4))
    intervals = lease_intervals(net)
    assert len({(n, t) for n, t, _, _ in intervals}) >= 5  # several leaders held leases
    for i, (a, ta, sa, ea) in enumerate(intervals):
        for b, tb, sb, eb in intervals[i + 1 :]:
            if a != b:
                assert ea <= sb or eb <= sa, f"{a} (term {ta}) and {b} (term {tb}) overlap"
    net.check()
    assert not net.stale_reads()


def test_a_clock_slower_than_the_bound_lets_a_deposed_leader_serve_a_stale_lease_read() -> None:
    # Why leases are dangerous: the bound is an assumption. The leader's clock runs at 15%
    # speed (drift -0.85, far beyond max_drift 0.05), so its lease outlives the followers'
    # patience: they elect a new leader, which commits a write the old one cannot see.
    net = make_net(3, seed=8)
    old = net.wait_leader()
    write(net, old, "x", "1")
    net.set_clock(old, drift=-0.85)
    net.run_for(0.1)
    net.isolate(old)  # clients still reach it
    new = net.wait_leader(max_time=1.0, exclude=[old])
    write(net, new, "x", "2")
    assert net.status(old)["lease_expiry"] > net.node_now(old)  # it still holds a lease
    stale = read(net, old, "x", "lease")
    assert stale is not None and (stale.status, stale.value) == ("ok", "1")
    assert any("misses writes" in p for p in net.stale_reads())
    # A quorum read at the same node is not fooled: it needs the majority it lost.
    rid = net.get(old, "x", "quorum")
    net.run_for(0.1)
    assert all(r.status != "ok" for r in net.replies_for(rid))
    net.check()  # still one leader per term: only the lease assumption broke
