"""A replica that fell behind catches up by state transfer; crashes and restarts (in the
middle of a write too) keep the replicas safe and the restarted one current."""

from __future__ import annotations

from protocols.pbft.messages import StateReply
from tests.pbft_helpers import make_net, put_all, wait_accepted, write


def test_a_replica_below_the_low_watermark_catches_up_by_state_transfer() -> None:
    net = make_net(4, checkpoint_interval=8, window=16)
    write(net, "a", "1")
    net.isolate("r3")
    for i in range(40):  # past several checkpoints, and past r3's whole window
        write(net, f"k{i}", str(i))
    assert net.status("r0")["checkpoint"] == 40
    assert net.status("r3")["applied_index"] == 1
    net.heal()
    rid = put_all(net, "after", "heal")
    wait_accepted(net, rid)
    assert net.run_until(lambda: net.kv("r3") == net.kv("r0"), 3.0), net.status("r3")
    transfers = net.events_of("pbft.state_transfer", "r3")
    assert transfers and transfers[-1].data["seq"] == 40
    assert net.counts["StateReply"] >= 1
    # It executes new requests after the transfer, with everyone else.
    rid = put_all(net, "later", "1")
    wait_accepted(net, rid)
    assert net.run_until(lambda: net.kv("r3").get("later") == "1", 1.0)
    assert net.status("r3")["applied_index"] == net.status("r0")["applied_index"]
    net.check()


def test_a_forged_state_answer_is_dropped_and_counted() -> None:
    net = make_net(4, checkpoint_interval=8, window=16)
    net.isolate("r3")
    for i in range(20):
        write(net, f"k{i}", str(i))
    net.set_byzantine("r0", "forge")  # its state answers carry a wrong image
    net.heal()
    rid = put_all(net, "after", "heal")
    wait_accepted(net, rid)
    assert net.run_until(lambda: net.kv("r3") == net.kv("r1"), 5.0), net.status("r3")
    # r3 asked r0 first (the first signer of the proof) and refused its image.
    assert any(s.src == "r0" for s in net.messages_of("StateReply"))
    assert net.status("r3")["drops"].get("bad_state", 0) >= 1
    assert any(s.src != "r0" for s in net.messages_of("StateReply"))
    assert all(isinstance(s.msg, StateReply) for s in net.messages_of("StateReply"))
    net.check()


def test_a_backup_restarts_and_re_executes_from_its_checkpoint() -> None:
    net = make_net(4, checkpoint_interval=8, window=16)
    for i in range(21):
        write(net, f"k{i}", str(i))
    before = net.kv("r2")
    net.crash("r2")
    net.restart("r2")
    # Restored from the checkpoint at 16, then 17..21 executed again from the WAL.
    assert net.kv("r2") == before
    assert [i for i, _, _ in net.applied("r2")] == [17, 18, 19, 20, 21]
    assert net.status("r2")["applied_index"] == 21
    write(net, "after", "restart")
    assert net.run_until(lambda: net.kv("r2") == net.kv("r0"), 1.0)
    net.check()


def test_the_primary_restarts_in_its_view_and_keeps_numbering() -> None:
    net = make_net(4)
    for i in range(5):
        write(net, f"k{i}", str(i))
    net.crash("r0")
    net.restart("r0")
    assert net.status("r0")["seq"] == 6 and net.status("r0")["role"] == "primary"
    answer = write(net, "after", "restart")
    assert answer[1] == 6
    net.check()


def test_crashes_in_the_middle_of_writes_keep_the_replicas_safe() -> None:
    net = make_net(4, seed=7, checkpoint_interval=4, window=8)
    for round_ in range(6):
        victim = net.ids[round_ % 4]
        net.crash(victim, mid_write=True)
        rids = [put_all(net, f"k{round_}-{i}", str(i), client=f"c{i}") for i in range(3)]
        net.run_for(0.05)
        net.restart_all()
        for rid in rids:
            wait_accepted(net, rid, 5.0)
        net.check()
    rid = put_all(net, "final", "1")
    wait_accepted(net, rid, 5.0)
    assert net.run_until(lambda: all(net.kv(i) == net.kv("r0") for i in net.ids), 5.0)
    net.check()
