"""The worked example of docs/adding-a-protocol.md, primary-backup with view changes
(tests/plugin_example), tested the way a protocol is: in the in-memory network
(protocols/simnet.py), with faults, crashes in the middle of a write and restarts, and
the network's own safety checks. The package is imported from its folder here; the slow
test in test_plugin_package.py installs it as a user would."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "plugin_example"))

from labctl_pb import PrimaryBackup
from labctl_pb.messages import EntriesRecord, Prepare, ViewRecord

import protocols
from labctl.selftest import selftest
from protocols import targeted
from protocols.base import ClientRequest
from protocols.simnet import SimNet


def done(net: SimNet, rid: str, within: float = 3.0) -> str:
    assert net.run_until(lambda: net.reply_for(rid) is not None, within), f"no reply to {rid}"
    reply = net.reply_for(rid)
    assert reply is not None
    return reply.status


def test_the_primary_orders_writes_and_reads_and_a_view_change_keeps_them() -> None:
    net = SimNet(PrimaryBackup, 3, seed=1)
    old = net.wait_leader()
    assert old == "r0" and net.status(old)["role"] == "primary"
    assert done(net, net.put(old, "x", "1")) == "ok"
    net.isolate(old)
    new = net.wait_leader(5.0, exclude=[old])
    assert net.status(new)["view"] > 0
    rid = net.get(new, "x")
    assert done(net, rid) == "ok" and net.reply_for(rid).value == "1"  # type: ignore[union-attr]
    # The cut-off primary still believes it leads; it commits nothing, and answers nothing.
    stale = net.put(old, "x", "stale")
    net.run_for(1.0)
    assert net.reply_for(stale) is None
    net.heal()
    net.run_for(1.0)
    assert net.status(old)["role"] == "backup"  # it follows the new view
    assert all(net.kv(i).get("x") == "1" for i in net.ids)
    net.check()
    assert not net.stale_reads()


def test_new_entries_leave_in_parallel_and_a_new_view_raises_the_barrier() -> None:
    net = SimNet(PrimaryBackup, 3, seed=2)
    lead = net.wait_leader()
    p = net.proto(lead)
    out = p.on_client(net.node_now(lead), "c0", ClientRequest(net.command("put", key="k",
                                                                           value="v")))
    assert [type(r) for r in out.persist] == [EntriesRecord]
    assert out.parallel and all(isinstance(m, Prepare) for _, m in out.parallel)
    assert not out.barrier
    # A backup moving to a new view persists its promise and lets nothing overtake it.
    backup = next(i for i in net.ids if i != lead)
    out = net.proto(backup).on_tick(net.node_now(backup) + 10.0)
    assert any(isinstance(r, ViewRecord) for r in out.persist)
    assert out.barrier and not out.parallel


def test_a_backup_that_missed_compacted_entries_gets_the_snapshot() -> None:
    net = SimNet(PrimaryBackup, 3, seed=3, options={"snapshot_every": 20})
    lead = net.wait_leader()
    late = next(i for i in net.ids if i != lead)
    net.isolate(late)
    for k in range(60):
        net.put(lead, f"k{k % 5}", str(k))
    net.run_for(1.0)
    assert net.status(lead)["snapshot_index"] >= 20
    net.heal()
    assert net.run_until(lambda: net.kv(late) == net.kv(lead), 3.0)
    assert net.messages_of("Snapshot"), "the late backup was caught up by a snapshot"
    # Both restart from their compacted WALs (snapshot + view + the entries after it).
    net.crash(late)
    net.crash(lead)
    net.restart_all()
    lead = net.wait_leader(5.0)
    assert done(net, net.put(lead, "after", "restart")) == "ok"
    net.run_for(1.0)
    assert len({str(sorted(net.kv(i).items())) for i in net.ids}) == 1
    net.check()


@pytest.mark.parametrize("seed", range(12))
def test_random_partitions_crashes_and_loss_never_break_safety(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([3, 5])
    net = SimNet(PrimaryBackup, n, seed=seed, options={"snapshot_every": 40})
    net.duplicate = 0.05
    for _ in range(30):
        act, ids = rng.random(), list(net.ids)
        if act < 0.15:
            side = rng.sample(ids, rng.randint(1, n // 2))
            net.partition(side, [i for i in ids if i not in side])
        elif act < 0.25:
            net.heal()
        elif act < 0.35 and len(net.alive()) > n // 2 + 1:
            net.crash(rng.choice(net.alive()), mid_write=rng.random() < 0.5)
        elif act < 0.45:
            net.restart_all()
        elif act < 0.5:
            net.drop(rng.choice(ids), rng.choice(ids), 0.3)
        for _ in range(rng.randint(1, 8)):
            node, key = rng.choice(net.alive()), f"k{rng.randint(0, 3)}"
            if rng.random() < 0.3:
                net.get(node, key)
            else:
                net.put(node, key, str(rng.randint(0, 999)))
        net.run_for(rng.uniform(0.05, 0.6))
    net.heal()
    net.restart_all()
    net.duplicate = 0.0
    net.link_loss.clear()
    lead = net.wait_leader(10.0)
    assert done(net, net.put(lead, "final", "x"), 5.0) == "ok"  # live again once healed
    # Every replica catches up (a lagging one by repair or by snapshot) to the same state.
    assert net.run_until(lambda: len({str(sorted(net.kv(i).items())) for i in net.ids}) == 1,
                         10.0)  # fmt: skip
    net.check()  # one primary per view, one command per index
    assert not net.stale_reads()


def test_it_is_found_as_module_class_and_declares_its_roles() -> None:
    assert protocols.get("labctl_pb:PrimaryBackup") is PrimaryBackup
    d = PrimaryBackup.display()
    assert d.leader_role == "primary" and d.candidate_role == "view_changing"
    assert [c.header for c in d.status_columns()] == ["role", "view", "primary", "commit",
                                                      "log", "vc"]  # fmt: skip
    with pytest.raises(protocols.UnknownProtocol, match=r"not a protocols\.base\.Protocol"):
        protocols.get("labctl_pb:Options")


def test_its_mutation_shows_in_its_targeted_schedule_and_not_without_it() -> None:
    # The schedule is found through the declaration, as `labctl selftest` finds it.
    schedule = targeted.schedules(PrimaryBackup)["commit-alone"]
    found = schedule("commit-alone", 1)
    assert found and found <= set(PrimaryBackup.mutations[0].violations), found
    assert schedule("", 1) == set()


def test_selftest_catches_its_mutation_and_the_lab_wide_ones_on_the_plugin() -> None:
    """`labctl selftest -p pb -m ...` in the simulator: the plugin's own mutation, and the
    broker's and the workload's, probed by their declared scenarios in a lab of pb."""
    name = "labctl_pb:PrimaryBackup"
    result = selftest([name], budget_s=20.0, replays=0, shrink_s=2.0,
                      mutations=["commit-alone", "no-fencing", "new-id-on-retry"])  # fmt: skip
    rows = {r["mutation"]: r for r in result["rows"]}
    assert set(rows) == {"commit-alone", "no-fencing", "new-id-on-retry"}
    for mutation, row in rows.items():
        assert row["protocol"] == name and row["caught"], (mutation, row)
        assert row["kind"] in row["expected"], (mutation, row)
    assert rows["no-fencing"]["how"] == "scenario fsync-stall"
    assert result["ok"]
