"""Raft log compaction and InstallSnapshot (paper section 7), with and without crashes."""

from __future__ import annotations

import random

import pytest

from protocols.base import SnapshotImage
from protocols.raft.invariants import check_all
from protocols.raft.messages import InstallSnapshot, SnapshotRecord
from protocols.simnet import SimNet
from tests.raft_helpers import make_net, write, write_anywhere


def same_state(net: SimNet) -> bool:
    kvs = [net.kv(i) for i in net.alive()]
    return all(kv == kvs[0] for kv in kvs)


def test_the_log_is_compacted_past_the_threshold() -> None:
    net = make_net(3, snapshot_threshold=20, catch_up_entries=0)
    leader = net.wait_leader()
    for i in range(60):
        write(net, leader, f"k{i % 5}", str(i))
    net.run_for(0.2)
    for node in net.ids:
        status = net.status(node)
        assert status["snapshot_index"] >= 40
        assert status["log_entries"] < 25  # the rest is in the snapshot
        assert any(isinstance(r, SnapshotRecord) for r in net.nodes[node].disk)
    assert same_state(net)
    net.check()


def test_snapshot_install_to_a_lagging_follower() -> None:
    net = make_net(3, seed=2, snapshot_threshold=20, catch_up_entries=0)
    leader = net.wait_leader()
    write(net, leader, "a", "0")
    follower = next(i for i in net.ids if i != leader)
    net.isolate(follower)
    for i in range(100):
        write(net, leader, f"k{i % 7}", str(i))
    assert net.status(leader)["snapshot_index"] > net.status(follower)["last_index"]
    net.heal()
    assert net.run_until(lambda: net.kv(follower) == net.kv(leader), 2.0)
    installs = [s for s in net.messages_of("InstallSnapshot") if s.dst == follower]
    assert installs
    assert net.status(follower)["snapshot_index"] >= installs[0].msg.index
    # It keeps up normally afterwards.
    last = write(net, leader, "after", "1")
    assert net.run_until(lambda: net.status(follower)["commit_index"] >= last.seq, 1.0)
    assert net.run_until(lambda: net.kv(follower).get("after") == "1", 1.0)
    net.check()


def test_restart_from_a_snapshot_restores_the_state_machine_first() -> None:
    net = make_net(3, seed=3, snapshot_threshold=10, catch_up_entries=0)
    leader = net.wait_leader()
    for i in range(30):
        write(net, leader, f"k{i}", str(i))
    node = next(i for i in net.ids if i != leader)
    net.run_for(0.2)
    snap_index = net.status(node)["snapshot_index"]
    assert snap_index > 0
    net.crash(node)
    net.restart(node)
    # Before hearing from anyone, it holds the image its snapshot record carried.
    assert net.nodes[node].model.applied_index == snap_index
    assert len(net.kv(node)) >= snap_index - 2
    assert net.run_until(lambda: net.kv(node) == net.kv(leader), 2.0)
    net.check()


def test_a_lost_install_snapshot_is_sent_again() -> None:
    net = make_net(3, seed=4, snapshot_threshold=10, catch_up_entries=0)
    leader = net.wait_leader()
    follower = next(i for i in net.ids if i != leader)
    net.isolate(follower)
    for i in range(40):
        write(net, leader, "k", str(i))
    lost: list[InstallSnapshot] = []

    def drop_first_snapshot(src: str, dst: str, msg: object) -> bool:
        if isinstance(msg, InstallSnapshot) and not lost:
            lost.append(msg)
            return False
        return True

    net.filter = drop_first_snapshot
    net.heal()
    assert net.run_until(lambda: net.kv(follower) == net.kv(leader), 3.0)
    assert lost
    assert len(net.messages_of("InstallSnapshot")) >= 2
    net.check()


def test_snapshot_install_under_crashes() -> None:
    rng = random.Random(5)
    net = make_net(5, seed=5, snapshot_threshold=15, catch_up_entries=0)
    net.wait_leader()
    for step in range(300):
        leader = net.leader()
        if leader is not None:
            net.put(leader, f"k{step % 4}", str(step))
        roll = rng.random()
        alive = net.alive()
        if roll < 0.04 and len(alive) > 3:
            net.crash(rng.choice(alive), mid_write=rng.random() < 0.5)
        elif roll < 0.12:
            dead = [n for n in net.ids if not net.nodes[n].alive]
            if dead:
                net.restart(rng.choice(dead))
        elif roll < 0.16:
            net.isolate(rng.choice(net.ids))
        elif roll < 0.22:
            net.heal()
        net.run_for(rng.uniform(0.005, 0.08))
        assert not check_all({n: net.proto(n) for n in net.alive()}, {})  # type: ignore[misc]
    net.heal()
    net.restart_all()
    write_anywhere(net, "end", "1")
    assert net.run_until(lambda: same_state(net) and net.kv("r0").get("end") == "1", 5.0)
    assert net.messages_of("InstallSnapshot")  # the scenario did exercise installs
    applied = {c.request_id for _, c in net.applied_at.values()}
    assert {r.request_id for _, _, r in net.replies if r.status == "ok"} <= applied
    net.check()


def test_a_snapshot_beyond_the_applied_index_is_refused() -> None:
    net = make_net(3, seed=6)
    leader = net.wait_leader()
    node = net.proto(leader)
    with pytest.raises(ValueError):
        node.on_snapshot(net.node_now(leader), SnapshotImage(node.applied + 5, node.term, b""))


def test_compaction_rewrites_the_durable_records_and_a_restart_recovers_from_them() -> None:
    net = make_net(3, snapshot_threshold=20, catch_up_entries=0)
    leader = net.wait_leader()
    for i in range(100):
        write(net, leader, f"k{i % 5}", str(i))
    net.run_for(0.2)
    for node in net.ids:
        disk = net.nodes[node].disk
        # One hard state, one snapshot, the entries after it (plus what came since):
        # bounded by the threshold, not by the 100 writes.
        assert sum(isinstance(r, SnapshotRecord) for r in disk) == 1
        assert len(disk) < 40, len(disk)
    before = net.kv(leader)
    net.crash(leader)
    net.restart(leader)
    net.run_for(1.0)
    assert net.kv(leader) == before


def test_a_follower_a_little_behind_gets_entries_not_the_whole_state_machine() -> None:
    # The leader keeps catch_up_entries behind its snapshot: a follower that missed fewer
    # than that is sent the entries it lacks (a snapshot would cost the whole image).
    net = make_net(3, seed=6, snapshot_threshold=20, catch_up_entries=30)
    leader = net.wait_leader()
    write(net, leader, "a", "0")
    follower = next(i for i in net.ids if i != leader)
    net.isolate(follower)
    for i in range(25):
        write(net, leader, f"k{i % 7}", str(i))
    assert net.status(leader)["snapshot_index"] > net.status(follower)["last_index"]
    net.heal()
    assert net.run_until(lambda: net.kv(follower) == net.kv(leader), 2.0)
    assert not [s for s in net.messages_of("InstallSnapshot") if s.dst == follower]
    net.check()


def test_large_puts_trigger_a_snapshot_so_dead_wal_space_is_compacted() -> None:
    """Issue 14, case 5: two 50 MB puts left 100 MB of dead WAL; a byte budget snapshots
    well before the entry count would."""
    import msgspec

    from tests.raft_helpers import make_net, write

    net = make_net(snapshot_bytes=1_000_000)
    net.run_until(lambda: net.leader() is not None, 5.0)
    leader = net.leader()
    assert leader is not None
    for i in range(20):
        write(net, leader, "big", str(i) * 200_000, max_time=5.0)
    net.run_for(1.0)
    for node in net.nodes.values():
        # 20 puts of 200-400 kB: about 6 MB of entries written, yet what the log still
        # holds besides the image is within the budget (a quarter of it kept behind).
        assert node.protocol.log.snapshot_index >= 15
        entries = sum(len(msgspec.msgpack.encode(r)) for r in node.disk
                      if type(r).__name__ == "LogEntries")  # fmt: skip
        assert entries < 1_000_000, entries


def test_the_session_table_keeps_no_copy_of_a_put_value() -> None:
    """A snapshot image holds each key's value once, not once more per put in the
    exactly-once table (the real state machine, nodes/state_machine.py)."""
    from nodes.state_machine import StateMachine
    from protocols.base import Command

    sm = StateMachine(exactly_once=True)
    for i in range(20):
        sm.apply(i + 1, 1, Command(request_id=f"c:{i}", client="c", op="put", key="big",
                                   value="x" * 100_000))  # fmt: skip
    assert len(sm.snapshot()) < 2 * 100_000
