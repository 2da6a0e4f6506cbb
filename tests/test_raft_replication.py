"""Raft log replication (paper section 5.3) and commitment (5.4.2) on the simulated network:
agreement, failures, the fast backup, batching, pipelining and flow control."""

from __future__ import annotations

from protocols.raft import RaftProtocol
from protocols.raft.invariants import committed_agreement, log_matching
from protocols.simnet import SimNet
from tests.raft_helpers import make_net as raft_net
from tests.raft_helpers import write


def make_net(n: int = 3, seed: int = 1, **kwargs: object) -> SimNet:
    kwargs.setdefault("latency", (0.001, 0.004))
    return raft_net(n, seed, **kwargs)


def applied_ids(net: SimNet, node: str) -> list[str]:
    return [c.request_id for _, _, c in net.applied(node)]


def applied_everywhere(net: SimNet, rid: str, nodes: list[str] | None = None) -> bool:
    return all(rid in applied_ids(net, n) for n in nodes or net.alive())


def protos(net: SimNet) -> dict[str, RaftProtocol]:
    return {i: net.proto(i) for i in net.alive()}  # type: ignore[misc]


def test_basic_agreement() -> None:
    net = make_net(5)
    leader = net.wait_leader()
    for i in range(1, 4):
        reply = write(net, leader, "k", str(i))
        # Index 1 is the leader's empty entry; the writes follow it in order.
        assert (reply.seq, reply.term) == (1 + i, net.status(leader)["term"])
        assert net.run_until(lambda r=reply: applied_everywhere(net, r.request_id), 1.0)
    assert all(net.kv(n) == {"k": "3"} for n in net.ids)
    assert {tuple(net.applied(n)) for n in net.ids} == {tuple(net.applied(leader))}
    net.check()


def test_agreement_despite_a_follower_failure() -> None:
    net = make_net(3, seed=2)
    leader = net.wait_leader()
    write(net, leader, "a", "1")
    follower = next(i for i in net.ids if i != leader)
    net.isolate(follower)
    # The two left are a majority: writes still commit.
    for v in "234":
        write(net, leader, "a", v)
    assert net.kv(follower).get("a") == "1"
    net.heal()
    last = write(net, leader, "a", "5")
    assert net.run_until(lambda: applied_everywhere(net, last.request_id), 2.0)
    assert net.kv(follower) == {"a": "5"}
    net.check()


def test_no_commit_without_a_majority() -> None:
    net = make_net(5, seed=3)
    leader = net.wait_leader()
    write(net, leader, "a", "1")
    followers = [i for i in net.ids if i != leader]
    for f in followers[:3]:
        net.isolate(f)
    commits = {i: net.status(i)["commit_index"] for i in net.ids}
    rid = net.put(leader, "a", "2")
    net.run_for(1.0)
    assert net.reply_for(rid) is None
    assert {i: net.status(i)["commit_index"] for i in net.ids} == commits
    assert all(net.kv(i).get("a") != "2" for i in net.ids)
    # Healed, the cluster makes progress again.
    net.heal()
    new = net.wait_leader(max_time=3.0)
    write(net, new, "b", "1")
    net.check()


def test_concurrent_client_requests() -> None:
    net = make_net(3, seed=4)
    leader = net.wait_leader()
    rids = [
        net.put(leader, f"k{i % 7}", f"c{c}-{i}", client=f"c{c}")
        for c in range(5)
        for i in range(20)
    ]
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 3.0)
    replies = [net.reply_for(r) for r in rids]
    assert all(r is not None and r.status == "ok" for r in replies)
    seqs = [r.seq for r in replies if r is not None]
    assert len(set(seqs)) == len(rids)  # each at its own index
    assert net.run_until(lambda: all(applied_everywhere(net, r) for r in rids), 2.0)
    assert len({tuple(net.applied(n)) for n in net.ids}) == 1
    # Followers got batches, not one entry per message.
    sizes = [len(s.msg.entries) for s in net.messages_of("AppendEntries")]
    assert max(sizes) > 1
    net.check()


def test_rejoin_of_a_partitioned_leader_with_uncommitted_entries() -> None:
    net = make_net(3, seed=5)
    leader1 = net.wait_leader()
    write(net, leader1, "x", "101")
    # leader1 is cut off and accepts writes it can never commit.
    net.isolate(leader1)
    lost = [net.put(leader1, "x", v) for v in ("102", "103", "104")]
    leader2 = net.wait_leader(max_time=2.0, exclude=[leader1])
    write(net, leader2, "x", "103'")
    # Now leader2 is cut off and leader1 comes back: the third node cannot vote for
    # leader1 (its log is less up to date, section 5.4.1), so the third node leads.
    net.heal()
    net.isolate(leader2)
    leader3 = net.wait_leader(max_time=3.0, exclude=[leader2])
    assert leader3 != leader1
    write(net, leader3, "x", "104'")
    net.heal()
    final = write(net, leader3, "x", "105")
    assert net.run_until(lambda: applied_everywhere(net, final.request_id), 2.0)
    for node in net.ids:
        assert not set(lost) & set(applied_ids(net, node))  # never applied anywhere
        assert net.kv(node) == {"x": "105"}
    assert not log_matching(protos(net))
    assert all(net.reply_for(r) is None for r in lost)  # never acknowledged either
    net.check()


def test_fast_backup_over_50_conflicting_entries() -> None:
    net = make_net(5, seed=6)
    old = net.wait_leader()
    write(net, old, "base", "0")
    follower = next(i for i in net.ids if i != old)
    rest = [i for i in net.ids if i not in (old, follower)]
    # The old leader and one follower, cut from the majority, take 50 writes they
    # cannot commit.
    net.partition([old, follower], rest)
    for i in range(50):
        net.put(old, "stale", str(i))
    net.run_for(0.05)
    assert net.status(follower)["last_index"] >= net.status(old)["last_index"] - 1
    # The majority elects a leader and commits 50 different writes in a later term.
    new = net.wait_leader(max_time=2.0, exclude=[old, follower])
    rids = [net.put(new, "fresh", str(i)) for i in range(50)]
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 2.0)
    # One more election in the majority: its leader starts probing the follower at the
    # end of its own log, far above where the two logs part.
    net.crash(new)
    net.restart(new)
    new = net.wait_leader(max_time=2.0, exclude=[old, follower])
    assert net.status(new)["last_index"] > net.status(follower)["last_index"]
    healed_at = net.now
    net.heal()

    def caught_up() -> bool:
        a, b = net.proto(new), net.proto(follower)
        return a.log.last_index == b.log.last_index and a.log.last_term == b.log.last_term

    assert net.run_until(caught_up, 2.0)
    to_follower = [s for s in net.messages_of("AppendEntries", healed_at) if s.dst == follower]
    rejections = [
        s
        for s in net.messages_of("AppendResponse", healed_at)
        if s.src == follower and s.dst == new and not s.msg.success
    ]
    # One rejection skips the whole conflicting term; a one-entry-at-a-time backup would
    # need about fifty round trips.
    assert 1 <= len(rejections) <= 2
    assert len(to_follower) <= 4
    assert net.run_until(lambda: applied_everywhere(net, rids[-1]), 2.0)
    assert not committed_agreement(protos(net))
    net.check()


def test_flow_control_bounds_appends_in_flight_to_an_unreachable_follower() -> None:
    net = make_net(3, seed=7, max_inflight=4, max_batch=16)
    leader = net.wait_leader()
    write(net, leader, "a", "0")  # every follower is in the replicate state now
    slow = next(i for i in net.ids if i != leader)
    net.cut(leader, slow, oneway=True)  # it hears nothing, so it acknowledges nothing
    cut_at = net.now
    rids = [net.put(leader, "a", str(i)) for i in range(100)]
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 3.0)
    net.run_for(1.0)
    sent = [s for s in net.messages_of("AppendEntries", cut_at) if s.dst == slow]
    assert len(sent) <= 4  # the window, not one per write
    # Once it hears the leader again it is probed and caught up in batches.
    healed_at = net.now
    net.heal()
    assert net.run_until(lambda: applied_everywhere(net, rids[-1]), 2.0)
    catch_up = [s for s in net.messages_of("AppendEntries", healed_at) if s.dst == slow]
    assert max(len(s.msg.entries) for s in catch_up) == 16
    assert len(catch_up) <= 100 // 16 + 4
    net.check()


def test_pipelining_sends_before_earlier_appends_are_acknowledged() -> None:
    net = make_net(3, seed=8, latency=(0.01, 0.01))
    leader = net.wait_leader()
    write(net, leader, "a", "0")
    follower = next(i for i in net.ids if i != leader)
    start = net.now
    rids = [net.put(leader, "a", str(i)) for i in range(5)]
    assert net.run_until(lambda: all(net.reply_for(r) for r in rids), 1.0)
    appends = [s for s in net.messages_of("AppendEntries", start) if s.dst == follower]
    first = appends[0].time
    # All five went out before the first could have been answered (a 20 ms round trip).
    assert sum(1 for s in appends if s.time < first + 0.015 and s.msg.entries) == 5


def test_followers_learn_the_commit_index() -> None:
    net = make_net(3, seed=9)
    leader = net.wait_leader()
    reply = write(net, leader, "a", "1")
    assert net.run_until(
        lambda: all(net.status(i)["commit_index"] >= reply.seq for i in net.ids), 0.5
    )


def test_a_bundle_of_requests_is_replicated_in_one_message_per_follower() -> None:
    net = make_net(3, seed=12)
    leader = net.wait_leader()
    net.run_for(0.2)
    since = net.now
    rids = net.request_bundle(leader, [net.command("put", key=f"k{i}", value=str(i))
                                       for i in range(40)])  # fmt: skip
    assert net.run_until(lambda: all(net.reply_for(r) is not None for r in rids), 2.0)
    assert all(net.reply_for(r).status == "ok" for r in rids)
    carrying = [s for s in net.messages_of("AppendEntries", since) if s.msg.entries]
    # One AppendEntries per follower carries the whole bundle (40 <= max_batch).
    assert len(carrying) == 2 and all(len(s.msg.entries) == 40 for s in carrying)
    assert net.run_until(lambda: all(net.kv(n).get("k39") == "39" for n in net.ids), 1.0)
    net.check()
