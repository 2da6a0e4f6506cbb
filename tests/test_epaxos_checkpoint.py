"""EPaxos checkpoints and compaction: memory and the WAL stay bounded over a long run, a
restarted replica starts from its checkpoint, and a replica far behind holds compaction
back until it has caught up (nothing it needs is ever thrown away)."""

from __future__ import annotations

from protocols.epaxos.messages import Checkpoint, InstanceState
from protocols.simnet import SimNet
from tests.epaxos_helpers import agreement_problems, make_net, proto

INTERVAL = 20


def _load(net: SimNet, writes: int, via: tuple[str, ...] = ("r0", "r1", "r2")) -> None:
    for k in range(writes):
        net.put(via[k % len(via)], f"k{k % 7}", str(k), client=f"c{k % 3}")
        net.run_for(0.002)


def _instances_on_disk(net: SimNet, node: str) -> int:
    return len({(r.replica, r.inum) for r in net.nodes[node].disk if isinstance(r, InstanceState)})


def test_memory_and_wal_stay_bounded_over_a_long_run() -> None:
    net = make_net(3, seed=5, checkpoint_interval=INTERVAL)
    peaks = {n: 0 for n in net.ids}
    for _ in range(10):
        _load(net, 120)
        for n in net.ids:
            peaks[n] = max(peaks[n], len(proto(net, n).instances), _instances_on_disk(net, n))
    net.run_for(1.0)
    for n in net.ids:
        p = proto(net, n)
        assert p.checkpoints >= 10 and sum(p.compacted) > 0, (n, p.checkpoints, p.compacted)
        # 1,200 writes went through; what is kept is a few checkpoints' worth.
        assert peaks[n] < 400, (n, peaks[n])
        disk = net.nodes[n].disk
        assert isinstance(disk[0], Checkpoint)  # the WAL was rewritten from a checkpoint
    assert net.kv("r0") == net.kv("r1") == net.kv("r2") and len(net.kv("r0")) == 7
    assert agreement_problems(net) == []
    net.check()


def test_a_restarted_replica_starts_from_its_checkpoint_and_goes_on() -> None:
    net = make_net(3, seed=8, checkpoint_interval=INTERVAL)
    _load(net, 300)
    net.run_for(0.5)
    before = net.kv("r2")
    net.crash("r2")
    net.restart("r2")
    # The image was restored: execution goes on from the checkpoint's position, not 1.
    applied = net.applied("r2")
    assert not applied or applied[0][0] > 1
    assert net.kv("r2") == before
    _load(net, 150)
    assert net.run_until(lambda: net.kv("r2") == net.kv("r0") == net.kv("r1"), 5.0)
    assert proto(net, "r2").checkpoints > 0
    assert agreement_problems(net) == []
    net.check()


def test_every_replica_restarting_from_checkpoints_agrees() -> None:
    net = make_net(3, seed=13, checkpoint_interval=INTERVAL)
    for round_ in range(4):
        _load(net, 80)
        node = f"r{round_ % 3}"
        net.crash(node, mid_write=round_ % 2 == 1)
        net.run_for(0.05)
        net.restart_all()
    _load(net, 40)
    assert net.run_until(lambda: net.kv("r0") == net.kv("r1") == net.kv("r2"), 5.0)
    assert agreement_problems(net) == []
    net.check()


def test_a_replica_far_behind_holds_compaction_back_and_catches_up() -> None:
    net = make_net(3, seed=3, checkpoint_interval=INTERVAL)
    _load(net, 60)
    net.run_for(0.5)
    net.partition({"r0"}, {"r1", "r2"})
    held = list(proto(net, "r1").compacted)
    for k in range(400):
        net.put("r1", f"far{k}", "v")
        net.run_for(0.002)
    net.run_for(0.5)
    # r0 has not checkpointed any of these: r1 and r2 keep them for it.
    assert proto(net, "r1").compacted[1] <= max(held[1], proto(net, "r0").checkpoint_floor[1])
    net.heal()
    _load(net, 30, via=("r1",))
    assert net.run_until(lambda: net.kv("r0") == net.kv("r1"), 10.0)
    # Compaction resumes once r0 has checkpointed them (checkpoints wait for half as
    # many executions as the backlog the last one rewrote).
    _load(net, 600)
    net.run_for(1.0)
    assert proto(net, "r1").compacted[1] > 400
    assert agreement_problems(net) == []
    net.check()
