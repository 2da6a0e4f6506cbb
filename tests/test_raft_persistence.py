"""Raft durability: crash and restart of one, many and all nodes, torn writes, the paper's
Figure 8 scenario (section 5.4.2) under crashes and under an unreliable network, and churn.

A restart rebuilds the protocol from the records it persisted (protocols/simnet.py does
what the replica runtime does with its WAL); the state machine starts empty each time.
"""

from __future__ import annotations

import random

from protocols.raft import RaftProtocol
from protocols.raft.invariants import check_all
from protocols.raft.messages import HardState, LogEntries
from protocols.simnet import SimNet
from tests.raft_helpers import make_net, write, write_anywhere


def converged(net: SimNet) -> bool:
    """Every running node applied the same commands up to the same index."""
    alive = net.alive()
    indices = {net.nodes[i].model.applied_index for i in alive}
    kvs = {tuple(sorted(net.kv(i).items())) for i in alive}
    return len(indices) == 1 and len(kvs) == 1


def acknowledged_writes_survive(net: SimNet) -> None:
    """Every write a client was told is ok was applied (and so is in the final state)."""
    applied = {c.request_id for _, c in net.applied_at.values()}
    acked = {r.request_id for _, _, r in net.replies if r.status == "ok"}
    assert acked <= applied, f"lost acknowledged writes: {sorted(acked - applied)}"


def committed_terms(net: SimNet) -> dict[int, tuple[int, int]]:
    top = max(net.proto(i).term for i in net.alive()) if net.alive() else 0
    return {index: (term, top) for index, (term, _) in net.applied_at.items()}


def test_persistence_across_restart_of_one_node() -> None:
    net = make_net(3)
    leader = net.wait_leader()
    write(net, leader, "a", "1")
    follower = next(i for i in net.ids if i != leader)
    net.crash(follower)
    write(net, leader, "a", "2")
    net.restart(follower)
    assert net.run_until(lambda: net.kv(follower) == {"a": "2"}, 2.0)
    # The leader itself crashes and comes back as a follower with its log intact.
    term = net.status(leader)["term"]
    net.crash(leader)
    net.restart(leader)
    assert net.status(leader)["term"] == term
    assert net.status(leader)["last_index"] >= 3
    write_anywhere(net, "a", "3")
    assert net.run_until(lambda: converged(net), 2.0)
    acknowledged_writes_survive(net)
    net.check()


def test_persistence_across_restart_of_many_nodes() -> None:
    net = make_net(5, seed=2)
    leader = net.wait_leader()
    write(net, leader, "a", "1")
    rng = random.Random(2)
    for i in range(2, 8):
        down = rng.sample(net.ids, 2)
        for node in down:
            net.crash(node)
        write_anywhere(net, "a", str(i))
        for node in down:
            net.restart(node)
    write_anywhere(net, "a", "final")
    assert net.run_until(lambda: converged(net) and net.kv("r0") == {"a": "final"}, 3.0)
    acknowledged_writes_survive(net)
    net.check()


def test_persistence_across_restart_of_all_nodes() -> None:
    net = make_net(3, seed=3)
    leader = net.wait_leader()
    for i in range(10):
        write(net, leader, f"k{i}", str(i))
    terms = {i: net.status(i)["term"] for i in net.ids}
    for node in net.ids:
        net.crash(node)
    for node in net.ids:
        net.restart(node)
        assert net.status(node)["term"] == terms[node]  # HardState came back
        assert net.kv(node) == {}  # the state machine starts empty...
    leader = net.wait_leader()
    write(net, leader, "after", "x")
    # ...and everything committed before is applied again, in the same order.
    expected = {f"k{i}": str(i) for i in range(10)} | {"after": "x"}
    assert net.run_until(lambda: all(net.kv(i) == expected for i in net.ids), 2.0)
    net.check()


def test_restart_replays_records_in_order() -> None:
    net = make_net(3, seed=4)
    leader = net.wait_leader()
    write(net, leader, "a", "1")
    disk = net.nodes[leader].disk
    assert isinstance(disk[0], HardState)
    assert any(isinstance(r, LogEntries) for r in disk)
    before = list(net.proto(leader).log.entries)
    net.crash(leader)
    net.restart(leader)
    assert net.proto(leader).log.entries == before


def test_a_crash_in_the_middle_of_a_write_loses_only_that_batch() -> None:
    net = make_net(3, seed=5)
    leader = net.wait_leader()
    write(net, leader, "a", "1")
    for round_ in range(5):
        victim = net.leader() if round_ % 2 == 0 else next(i for i in net.alive())
        assert victim is not None
        net.crash(victim, mid_write=True)
        write_anywhere(net, "a", str(round_))
        if net.nodes[victim].alive:
            net.crash(victim)
        net.restart(victim)
        assert not check_all({i: net.proto(i) for i in net.alive()}, {})  # type: ignore[misc]
    write_anywhere(net, "a", "end")
    assert net.run_until(lambda: converged(net), 3.0)
    acknowledged_writes_survive(net)
    net.check()


def test_figure_8_under_crashes() -> None:
    # The paper's Figure 8: leaders crash right after appending, so entries of old terms
    # sit on a minority and later leaders must not count replicas to commit them.
    rng = random.Random(8)
    net = make_net(5, seed=8)
    net.wait_leader()
    write_anywhere(net, "k", "start")
    up = 5
    for i in range(1000):
        leader = None
        for node in net.alive():
            if net.status(node)["role"] == "leader":
                leader = node
                net.put(node, "k", f"v{i}")
        if rng.random() < 0.1:
            net.run_for(rng.uniform(0, 0.5))
        else:
            net.run_for(rng.uniform(0, 0.013))
        if leader is not None and net.nodes[leader].alive:
            net.crash(leader)
            up -= 1
        if up < 3:
            down = [n for n in net.ids if not net.nodes[n].alive]
            net.restart(rng.choice(down))
            up += 1
        assert not check_all({n: net.proto(n) for n in net.alive()}, committed_terms(net))  # type: ignore[misc]
    net.restart_all()
    # A distinct key: writes offered to earlier leaders may still commit after this one.
    write_anywhere(net, "end", "1")
    assert net.run_until(lambda: converged(net) and net.kv("r0").get("end") == "1", 3.0)
    acknowledged_writes_survive(net)
    net.check()


def test_figure_8_under_an_unreliable_network() -> None:
    rng = random.Random(9)
    net = SimNet(RaftProtocol, 5, seed=9, latency=(0.001, 0.03))
    net.loss = 0.1
    net.reorder = True
    net.duplicate = 0.05
    net.wait_leader(max_time=10.0)
    write_anywhere(net, "k", "start", max_time=20.0)
    cut: set[str] = set()
    for i in range(1000):
        leader = net.leader()
        if leader is not None:
            net.put(leader, "k", f"v{i}")
        net.run_for(rng.uniform(0, 0.5) if rng.random() < 0.1 else rng.uniform(0, 0.013))
        if leader is not None and rng.random() < 0.5 and leader not in cut:
            net.isolate(leader)
            cut.add(leader)
        if len(cut) >= 3:
            back = rng.choice(sorted(cut))
            cut.discard(back)
            net.heal()
            net.loss = 0.1
            for node in cut:
                net.isolate(node)
    net.heal()
    write_anywhere(net, "end", "1", max_time=20.0)
    assert net.run_until(lambda: converged(net) and net.kv("r0").get("end") == "1", 5.0)
    acknowledged_writes_survive(net)
    net.check()


def test_churn() -> None:
    # Clients keep writing to whoever they think leads while nodes crash, restart and get
    # cut off; at the end every acknowledged write is in every node's state.
    rng = random.Random(10)
    net = make_net(5, seed=10)
    net.wait_leader()
    for step in range(600):
        for c in range(3):
            target = net.leader() or rng.choice(net.ids)
            if net.nodes[target].alive:
                net.put(target, f"k{c}", f"{c}-{step}", client=f"c{c}")
        roll = rng.random()
        alive = net.alive()
        if roll < 0.05 and len(alive) > 3:
            net.crash(rng.choice(alive), mid_write=rng.random() < 0.5)
        elif roll < 0.15:
            for node in net.ids:
                if not net.nodes[node].alive:
                    net.restart(node)
                    break
        elif roll < 0.2:
            net.isolate(rng.choice(net.ids))
        elif roll < 0.3:
            net.heal()
        net.run_for(rng.uniform(0.005, 0.1))
        net.check()
    net.heal()
    net.restart_all()
    write_anywhere(net, "end", "1")
    assert net.run_until(lambda: converged(net) and net.kv("r0").get("end") == "1", 5.0)
    acknowledged_writes_survive(net)
    assert sum(1 for _, _, r in net.replies if r.status == "ok") > 50  # it did make progress
    net.check()


def test_a_follower_back_with_less_than_it_acknowledged_is_repaired_by_the_same_leader() -> None:
    """A corrupt WAL (Protocol-Aware Recovery): the follower restarts at once, damaged,
    with an older state of its log. The leader, which still counts it at its old match,
    learns from its rejection that the match is void and repairs it without an election
    (it does not loop probing above the follower's log); the follower then takes writes."""
    from protocols.base import events as ev

    net = make_net(3, seed=7)
    leader = net.wait_leader()
    for i in range(20):
        write(net, leader, f"k{i}", f"v{i}")
    net.run_for(0.2)
    follower = next(r for r in net.ids if r != leader)
    term = net.status(leader)["term"]
    net.crash(follower, power_loss=False)
    node = net.nodes[follower]
    half = len(node.disk) // 2
    node.disk, tail = node.disk[:half], node.disk[half + 1 :]  # one record lost in the middle
    node.damaged, node.damaged_tail = True, tuple(tail)
    net.restart(follower)
    assert net.status(follower)["repairing"]
    sent = sum(net.counts.values())
    assert net.run_until(lambda: bool(net.events_of(ev.WAL_REPAIRED, follower)), 2.0)
    assert sum(net.counts.values()) - sent < 200  # repaired in a few round trips
    assert net.status(leader)["role"] == "leader" and net.status(leader)["term"] == term
    assert not node.damaged  # the marker is dropped with the repair
    write(net, leader, "after", "repair")
    net.run_for(0.2)
    assert net.status(follower)["last_index"] == net.status(leader)["last_index"]
    net.check()
