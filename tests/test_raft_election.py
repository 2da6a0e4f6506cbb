"""Raft leader election (paper section 5.2), pre-vote and check-quorum (thesis 9.6, 6.2).

All on the in-memory network (protocols/simnet.py), seeded and in virtual time.
"""

from __future__ import annotations

import random

import pytest

from protocols.base import NodeConfig
from protocols.base import events as ev
from protocols.raft import Options, RaftProtocol
from protocols.raft.messages import Entry, HardState, LogEntries, RequestVote, VoteResponse
from protocols.simnet import SimNet
from tests.raft_helpers import make_net

ET = 0.15  # default election timeout
HB = 0.05  # default heartbeat interval


def terms(net: SimNet) -> dict[str, int]:
    return {i: net.status(i)["term"] for i in net.alive()}


def test_initial_election() -> None:
    net = make_net(3)
    leader = net.wait_leader(max_time=1.0)
    assert net.now < 4 * ET  # one randomized timeout plus a few round trips
    assert len(set(terms(net).values())) == 1
    assert net.events_of(ev.BECAME_LEADER)[0].data == {"term": 1, "how": "elected"}
    # Stable: with no failures nobody campaigns again.
    term = net.status(leader)["term"]
    net.run_for(3.0)
    assert net.leaders() == [leader]
    assert set(terms(net).values()) == {term}
    net.check()


def test_new_leader_appends_an_empty_entry_of_its_term() -> None:
    net = make_net(3)
    leader = net.wait_leader()
    node = net.proto(leader)
    last = node.log.entry(node.log.last_index)
    assert (last.term, last.command) == (node.term, None)  # section 8


def test_reelection_after_leader_loss() -> None:
    net = make_net(3, seed=2)
    first = net.wait_leader()
    net.isolate(first)
    second = net.wait_leader(max_time=2.0, exclude=[first])
    assert second != first
    assert net.status(second)["term"] > net.status(first)["term"]
    # The old leader rejoins: it must not disturb the new one, and follows it.
    net.heal()
    net.run_for(1.0)
    assert net.leader() == second
    assert net.status(first)["leader"] == second
    # No quorum: two of three gone, nobody may lead.
    third = next(i for i in net.ids if i != second)
    net.isolate(second)
    net.isolate(third)
    net.run_for(2.0)
    assert net.agreed_leader() is None
    # One comes back: a majority again elects a leader.
    net.heal()
    net.isolate(third)
    assert net.wait_leader(max_time=2.0) in {first, second}
    net.check()


def test_no_leader_without_a_quorum() -> None:
    net = make_net(5, seed=3)
    net.wait_leader()
    for node in ("r0", "r1", "r2"):
        net.crash(node)
    net.run_for(3.0)
    assert net.leaders() == [] or all(net.status(i)["role"] != "leader" for i in net.alive())
    # The minority kept campaigning (or pre-campaigning) and never won.
    for node in ("r3", "r4"):
        assert net.status(node)["role"] != "leader"
    net.check()


def test_many_elections_under_random_disconnects() -> None:
    net = make_net(7, seed=4)
    net.wait_leader()
    rng = random.Random(4)
    for _ in range(10):
        down = rng.sample(net.ids, 3)
        for node in down:
            net.isolate(node)
        # The four still connected are a majority: they must end up with a leader.
        net.wait_leader(max_time=3.0, exclude=down)
        net.heal()
    net.wait_leader()
    net.check()  # never two leaders in one term


def test_a_split_vote_resolves() -> None:
    # Four nodes, two cut off: the other two need each other's vote plus one more, so
    # elections keep failing until a third joins; then one wins.
    net = make_net(4, seed=5)
    net.isolate("r0")
    net.isolate("r1")
    net.run_for(1.0)
    assert net.leaders() == []
    net.heal()
    net.wait_leader(max_time=2.0)
    net.check()


def test_message_counts_for_an_election_and_idle_seconds() -> None:
    n = 3
    net = make_net(n, seed=6)
    net.wait_leader()
    # One pre-vote round and one vote round, each a request and an answer per peer.
    assert net.counts["RequestVote"] <= 2 * (n - 1)
    assert net.counts["VoteResponse"] <= 2 * (n - 1)
    net.run_for(0.5)  # let the empty entry commit and the commit index spread
    net.counts.clear()
    net.run_for(1.0)
    # Idle: one heartbeat round per interval to each peer, each answered, nothing else.
    rounds = 1.0 / HB
    for kind in ("Heartbeat", "HeartbeatResponse"):
        assert (rounds - 1) * (n - 1) <= net.counts[kind] <= (rounds + 1) * (n - 1)
    assert set(net.counts) == {"Heartbeat", "HeartbeatResponse"}


def test_pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader() -> None:
    net = make_net(3, seed=7)
    leader = net.wait_leader()
    term = net.status(leader)["term"]
    follower = next(i for i in net.ids if i != leader)
    net.isolate(follower)
    net.run_for(2.0)  # it times out many times, but its pre-votes fail: term unchanged
    assert net.status(follower)["term"] == term
    net.heal()
    net.run_for(1.0)
    assert net.leader() == leader
    assert net.status(leader)["term"] == term
    assert net.status(follower)["leader"] == leader


def test_without_pre_vote_a_rejoining_node_deposes_the_leader() -> None:
    # The contrast: the isolated node bumps its term on every timeout; when it is back,
    # the leader hears that term and steps down (an election nobody needed).
    net = make_net(3, seed=7, pre_vote=False)
    leader = net.wait_leader()
    term = net.status(leader)["term"]
    follower = next(i for i in net.ids if i != leader)
    net.isolate(follower)
    net.run_for(2.0)
    assert net.status(follower)["term"] > term + 3
    net.heal()
    net.run_for(2.0)
    assert net.status(net.wait_leader())["term"] > term
    assert any(e.data["reason"] == "higher_term" for e in net.events_of(ev.STEPPED_DOWN, leader))
    net.check()


def test_check_quorum_steps_down_an_isolated_leader() -> None:
    net = make_net(3, seed=8)
    leader = net.wait_leader()
    cut_at = net.now
    net.isolate(leader)
    assert net.run_until(lambda: net.status(leader)["role"] != "leader", max_time=1.0)
    # Within two check-quorum periods of the cut.
    assert net.now - cut_at <= 2 * ET + 0.01
    (down,) = net.events_of(ev.STEPPED_DOWN, leader)
    assert down.data["reason"] == "check_quorum"


def test_without_check_quorum_an_isolated_leader_stays_leader() -> None:
    net = make_net(3, seed=8, check_quorum=False)
    leader = net.wait_leader()
    net.isolate(leader)
    net.run_for(2.0)
    assert net.status(leader)["role"] == "leader"  # it cannot know: the reason for 6.2
    assert len(net.leaders()) == 2  # in different terms
    net.check()


def test_one_way_cut_from_the_leader_still_ends_with_one_leader() -> None:
    # The leader can send but hears nothing back: check-quorum deposes it, the others
    # (which still hear it) must still elect a new leader once it goes quiet.
    net = make_net(3, seed=9)
    leader = net.wait_leader()
    for other in net.ids:
        if other != leader:
            net.cut(other, leader, oneway=True)
    assert net.run_until(lambda: net.status(leader)["role"] != "leader", max_time=1.0)
    net.wait_leader(max_time=3.0, exclude=[leader])
    net.check()


# -- single-node rules, driving one protocol object directly ------------------------------


def single(node: str = "r0", n: int = 3, seed: int = 0, **options: object) -> RaftProtocol:
    replicas = tuple(f"r{i}" for i in range(n))
    return RaftProtocol(NodeConfig(node, replicas, Options(**options), random.Random(seed)))


@pytest.mark.parametrize("seed", range(20))
def test_election_timeout_is_randomized_in_one_to_two_timeouts(seed: int) -> None:
    node = single(seed=seed)
    ready = node.start(10.0, [])
    assert ready.next_deadline is not None
    assert 10.0 + ET <= ready.next_deadline < 10.0 + 2 * ET


def test_vote_is_refused_to_a_less_up_to_date_log() -> None:
    # Section 5.4.1: our last entry has term 2; a candidate whose last term is 1 loses,
    # however long its log.
    node = single(check_quorum=False)
    node.start(0.0, [HardState(2, None), LogEntries((Entry(1, 1), Entry(2, 2)))])
    out = node.on_message(1.0, "r1", RequestVote(3, last_index=10, last_term=1))
    assert out.messages == [("r1", VoteResponse(3, False))]
    out = node.on_message(1.0, "r2", RequestVote(3, last_index=2, last_term=2))
    assert out.messages == [("r2", VoteResponse(3, True))]
    assert out.persist == [HardState(3, "r2")]  # on disk before the answer leaves


def test_one_vote_per_term_even_across_a_restart() -> None:
    node = single(check_quorum=False)
    node.start(0.0, [])
    out = node.on_message(1.0, "r1", RequestVote(1, 0, 0))
    assert out.messages == [("r1", VoteResponse(1, True))]
    records = out.persist
    # Restarted from what it persisted, it still remembers the vote.
    again = single(check_quorum=False)
    again.start(2.0, records)
    out = again.on_message(2.0, "r2", RequestVote(1, 0, 0))
    assert out.messages == [("r2", VoteResponse(1, False))]
    out = again.on_message(2.0, "r1", RequestVote(1, 0, 0))
    assert out.messages == [("r1", VoteResponse(1, True))]  # the same candidate again


def test_a_higher_term_turns_a_leader_into_a_follower() -> None:
    net = make_net(3, seed=10)
    leader = net.wait_leader()
    node = net.proto(leader)
    term = node.term
    node.on_message(net.node_now(leader), node.peers[0], VoteResponse(term + 5, False))
    assert (node.role, node.term, node.vote) == ("follower", term + 5, None)
