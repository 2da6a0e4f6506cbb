"""EPaxos recovery: a command leader lost after its fast commit, pre-accepting replicas
restarting, asymmetric loss during recovery, no-ops, and the Sutra 2019 counterexample
shape (two recoveries in different ballots must not commit different dependencies)."""

from __future__ import annotations

from protocols.base import Command
from protocols.epaxos.invariants import committed_attributes
from protocols.epaxos.messages import ACCEPTED, COMMITTED, PREACCEPTED, Commit, PreAccept
from tests.epaxos_helpers import (
    Manual,
    agreement_problems,
    applied_everywhere,
    applied_ids,
    make_net,
    proto,
    write,
)


def put(rid: str, key: str = "k", value: str = "v") -> Command:
    return Command(request_id=rid, client="c0", op="put", key=key, value=value)


def test_fast_commit_then_leader_crash_keeps_the_order_of_a_later_command() -> None:
    net = make_net(5, seed=21, thrifty=True)
    # r0's Commit never leaves: it fast-commits, answers its client, then crashes.
    net.filter = lambda src, dst, msg: not (src == "r0" and isinstance(msg, Commit))
    first = write(net, "r0", "k", "first")
    assert proto(net, "r0").fast == 1
    net.crash("r0")
    net.filter = None
    # A later conflicting write through a replica that never saw the first one.
    second = write(net, "r3", "k", "second", max_time=3.0)
    assert net.run_until(lambda: applied_everywhere(net, second.request_id), 3.0)
    for node in net.alive():
        order = applied_ids(net, node, "k")
        assert order.index(first.request_id) < order.index(second.request_id), (node, order)
        assert net.kv(node)["k"] == "second"
    assert net.events_of("epaxos.recovery") and net.events_of("epaxos.recovered")
    net.restart("r0")
    assert net.run_until(lambda: net.kv("r0").get("k") == "second", 2.0)
    assert applied_ids(net, "r0", "k") == applied_ids(net, "r1", "k")
    assert agreement_problems(net) == []
    net.check()


def test_pre_accepted_replica_restarts_from_its_records() -> None:
    net = make_net(3, seed=22)
    net.filter = lambda src, dst, msg: not isinstance(msg, Commit)
    rid = net.put("r0", "k", "1")
    assert net.run_until(lambda: proto(net, "r1").instances.get((0, 1)) is not None, 1.0)
    assert proto(net, "r1").instances[(0, 1)].status == PREACCEPTED
    net.crash("r1")
    net.restart("r1")
    assert proto(net, "r1").instances[(0, 1)].status == PREACCEPTED  # from its records
    net.filter = None
    assert net.run_until(lambda: applied_everywhere(net, rid), 3.0)
    assert len({str(net.kv(i)) for i in net.ids}) == 1
    assert agreement_problems(net) == []
    net.check()


def test_restart_executes_the_committed_history_again_from_index_one() -> None:
    net = make_net(3, seed=23)
    rids = [write(net, net.ids[i % 3], f"k{i % 2}", str(i)).request_id for i in range(6)]
    assert net.run_until(lambda: all(applied_everywhere(net, r) for r in rids), 1.0)
    before = applied_ids(net, "r2")
    net.crash("r2", mid_write=False)
    net.restart("r2")
    applied = net.applied("r2")
    assert [index for index, _, _ in applied] == list(range(1, 7))
    for key in ("k0", "k1"):
        assert applied_ids(net, "r2", key) == [
            r for r in before if r in applied_ids(net, "r0", key)
        ]
    assert net.kv("r2") == net.kv("r0")
    net.check()


def test_crash_in_the_middle_of_a_write_stays_consistent() -> None:
    net = make_net(3, seed=24)
    write(net, "r0", "k", "1")
    net.crash("r1", mid_write=True)
    rid = net.put("r0", "k", "2")
    net.run_for(0.05)
    net.restart("r1")
    assert net.run_until(lambda: applied_everywhere(net, rid), 3.0)
    assert {net.kv(i)["k"] for i in net.ids} == {"2"}
    assert agreement_problems(net) == []
    net.check()


def test_asymmetric_pre_accept_loss_during_recovery() -> None:
    net = make_net(5, seed=25)
    # r0's PreAccept reaches r1 only, then r0 is gone: the instance must be recovered.
    net.filter = lambda src, dst, msg: not (src == "r0" and dst != "r1")
    rid = net.put("r0", "k", "lost-leader")
    assert net.run_until(lambda: (0, 1) in proto(net, "r1").instances, 0.5)
    net.crash("r0")
    # Recovery's PreAccepts (ballot > 0) are lost one way on some links, replies are not.
    net.filter = lambda src, dst, msg: not (
        isinstance(msg, PreAccept) and msg.ballot > 0 and (src, dst) in {("r1", "r3"), ("r2", "r4"),
                                                                          ("r3", "r2")}
    )  # fmt: skip
    net.cut("r4", "r1", oneway=True)
    later = net.put("r2", "k", "later")
    assert net.run_until(lambda: applied_everywhere(net, later), 5.0)
    assert net.run_until(
        lambda: all(proto(net, i).instances[(0, 1)].status == COMMITTED for i in net.alive()), 3.0
    )
    # Recovered as the command or, when a quorum without r1 answered first, as a no-op:
    # either way the same decision at every replica, applied everywhere or nowhere.
    assert len({proto(net, i).instances[(0, 1)].cmds for i in net.alive()}) == 1
    assert len({rid in applied_ids(net, i) for i in net.alive()}) == 1
    orders = {tuple(applied_ids(net, i, "k")) for i in net.alive()}
    assert len(orders) == 1
    assert agreement_problems(net) == []
    net.check()


def test_an_instance_nobody_saw_becomes_a_no_op() -> None:
    m = Manual(3)
    m.client("r0", put("a"))
    m.drop("PreAccept", src="r0")  # r0 opened (0,1) and told no one
    m.client("r0", put("b"))  # (0,2) depends on (0,1)
    m.deliver("PreAccept")
    m.deliver("PreAcceptReply")
    m.deliver("Commit")
    assert m.applied["r1"] == []  # waits for (0,1), which r1 never heard of
    m.recover("r1", (0, 1))
    m.drop(dst="r0")  # r0, the only one that knows "a", is unreachable
    m.deliver("Prepare")
    m.deliver("PrepareReply")
    m.deliver("Accept")
    m.deliver("AcceptReply")
    m.deliver("Commit", dst="r2")
    assert m.replicas["r1"].instances[(0, 1)].cmds == ()
    assert m.replicas["r2"].instances[(0, 1)].cmds == ()
    assert m.applied["r1"] == m.applied["r2"] == ["b"]  # the no-op is not a command


def test_a_leader_that_forgot_its_fast_commit_is_no_evidence_in_recovery() -> None:
    """Commit records are written without an fsync. r1 fast-commits "a" with r2 (n=3)
    at seq 0, then r1 and r0 lose their Commit records in a crash. r0 meanwhile saw a
    conflicting "b", so a Phase 1 through r0 would give "a" another seq. r1 restarted
    cannot vouch that it never decided "a": recovery must wait for r2, and keep seq 0."""
    m = Manual(3)
    m.client("r0", put("b"))
    m.drop("PreAccept", src="r0")  # (0,1) "b": known at r0 only
    m.client("r1", put("a"))
    m.deliver("PreAccept", src="r1", dst="r2")
    m.drop("PreAccept", src="r1")
    m.deliver("PreAcceptReply")
    decided = m.replicas["r1"].instances[(1, 1)]
    assert decided.status == COMMITTED and m.replicas["r1"].fast == 1
    m.deliver("Commit")
    assert m.applied["r2"] == ["a"]  # executed at r2 with seq 0
    m.restart("r1")
    m.restart("r0", seed=98)
    assert m.replicas["r1"].instances[(1, 1)].status == PREACCEPTED  # the Commit is lost
    m.outbox.clear()  # start-up Syncs
    m.recover("r1", (1, 1))
    m.drop(dst="r2")  # r2, the only other one that knows, is cut off
    m.deliver("Prepare")
    m.deliver("PrepareReply")
    # r1 (its own answer does not count) and r0 are no majority: nothing is decided.
    assert m.replicas["r1"].leading[(1, 1)].phase == "prepare"
    assert not [x for x in m.outbox if type(x[2]).__name__ in ("PreAccept", "Accept")]
    m.recover("r1", (1, 1))  # r2 reachable again, a new attempt
    for _ in range(6):
        for kind in ("Prepare", "PrepareReply", "TryPreAccept", "TryPreAcceptReply",
                     "PreAccept", "PreAcceptReply", "Accept", "AcceptReply", "Commit"):  # fmt: skip
            m.deliver(kind)
    attrs = {i: (p.instances[(1, 1)].seq, p.instances[(1, 1)].deps) for i, p in m.replicas.items()}
    assert set(attrs.values()) == {(0, (0, 0, 0))}, attrs
    assert committed_attributes(m.replicas) == []


def test_two_recoveries_in_different_ballots_commit_one_set_of_dependencies() -> None:
    """Sutra 2019: recovery must compare vote ballots, not promises. r4 pre-accepted other
    attributes in ballot b1 and later promised a higher ballot; r2 accepted the attributes
    r1 committed, in b1. A recoverer that took r4's promise for its vote ballot would redo
    Phase 1 and commit different dependencies from r1's."""
    m = Manual(5, thrifty=False)
    m.client("r0", put("gamma"))
    m.deliver("PreAccept", src="r0", dst="r1")  # gamma pre-accepted at r1 only
    m.drop(src="r0")
    m.drop(dst="r0")
    m.deliver("PreAcceptReply")
    m.drop(dst="r0")
    m.client("r3", put("delta"))  # a conflicting command, committed without gamma
    m.deliver("PreAccept", src="r3", dst="r2")
    m.deliver("PreAccept", src="r3", dst="r4")
    m.drop("PreAccept", src="r3")
    m.deliver("PreAcceptReply")
    m.deliver("Commit")
    assert m.replicas["r3"].fast == 1

    # Recovery 1 (r1, ballot b1): TryPreAccept meets the committed delta, so Phase 1.
    m.recover("r1", (0, 1))
    b1 = m.replicas["r1"].leading[(0, 1)].ballot
    m.deliver("Prepare", dst="r2")
    m.deliver("Prepare", dst="r4")
    m.drop(dst="r0")
    m.drop("Prepare")
    m.deliver("PrepareReply")
    m.deliver("TryPreAccept")
    m.deliver("TryPreAcceptReply")
    # r4 opens a conflicting instance of its own before gamma's Phase 1 reaches it.
    m.client("r4", put("eps"))
    m.drop("PreAccept", src="r4")
    m.deliver("PreAccept", src="r1")
    m.drop("PreAcceptReply", src="r4")  # r1 never learns r4's different attributes
    m.deliver("PreAcceptReply")
    accept = [msg for s, _, msg in m.outbox if s == "r1" and type(msg).__name__ == "Accept"]
    assert accept and accept[0].ballot == b1
    m.deliver("Accept", dst="r2")
    m.deliver("Accept", dst="r3")
    m.drop("Accept")
    m.deliver("AcceptReply")
    r1 = m.replicas["r1"].instances[(0, 1)]
    assert r1.status == COMMITTED  # committed at r1 alone: its Commits are lost
    m.drop(src="r1")
    r4 = m.replicas["r4"].instances[(0, 1)]
    assert r4.status == PREACCEPTED and r4.vballot == b1 and r4.deps != r1.deps

    # A failed recovery by r3 leaves r4 promised a higher ballot, still voted in b1.
    m.recover("r3", (0, 1))
    m.deliver("Prepare", src="r3", dst="r4")
    m.outbox.clear()
    assert r4.ballot > b1 and r4.vballot == b1

    # Recovery 2 by r2 over r2, r3 (both accepted in b1) and r4. Its first ballot is
    # below r3's promise (refused); the retry goes above it.
    m.recover("r2", (0, 1))
    m.deliver("Prepare", dst="r3")
    m.drop(dst="r0")
    m.drop(dst="r1")
    m.drop(dst="r4")
    m.deliver("PrepareReply")
    assert (0, 1) not in m.replicas["r2"].leading
    m.recover("r2", (0, 1))
    assert m.replicas["r2"].leading[(0, 1)].ballot > r4.ballot
    m.deliver("Prepare", dst="r3")
    m.deliver("Prepare", dst="r4")
    m.drop(dst="r0")
    m.drop(dst="r1")
    m.deliver("PrepareReply")
    m.deliver("Accept")
    m.deliver("AcceptReply")
    m.deliver("Commit")
    live = {i: m.replicas[i] for i in ("r1", "r2", "r3", "r4")}
    assert all(p.instances[(0, 1)].status == COMMITTED for p in live.values())
    assert {p.instances[(0, 1)].deps for p in live.values()} == {r1.deps}
    assert committed_attributes(live) == []
    assert m.replicas["r3"].instances[(0, 1)].status != ACCEPTED


def test_recovery_events_are_emitted_once_per_recovery_not_per_command() -> None:
    net = make_net(3, seed=26)
    for i in range(20):
        write(net, net.ids[i % 3], "k", str(i))
    assert net.events_of("epaxos.recovery") == []
    assert net.status("r0")["recovering"] == 0


def test_a_restarted_replica_fills_a_hole_below_the_highest_instance_it_knows() -> None:
    # r0 never hears of r1's first instance, then votes for its second. The timer that
    # would recover the hole dies with r0; Syncs only send what lies above the highest
    # number r0 knows: found by the seeded random schedules (r0 never applied k1).
    net = make_net(3, seed=5, thrifty=False)
    net.cut("r1", "r0")
    write(net, "r1", "k1", "1")
    net.heal()
    rid = net.put("r1", "k2", "2")
    assert net.run_until(lambda: (1, 2) in proto(net, "r0").instances, 1.0)
    assert (1, 1) not in proto(net, "r0").instances
    net.crash("r0")
    net.restart("r0")
    assert proto(net, "r0").known_max[1] == 2 and (1, 1) not in proto(net, "r0").instances
    assert net.run_until(lambda: net.kv("r0").get("k1") == "1", 3.0), net.kv("r0")
    assert net.run_until(lambda: applied_everywhere(net, rid), 3.0)
    assert len({str(sorted(net.kv(i).items())) for i in net.ids}) == 1
    assert agreement_problems(net) == []
    net.check()


def test_a_replica_cut_off_for_hundreds_of_instances_catches_up_after_the_heal() -> None:
    # r0 is cut off while r1 commits 400 writes on keys of their own (nothing will ever
    # depend on them). After the heal, the first new instance tells r0 how far r1 got;
    # recovery timers cover only the last batch below it, and the Syncs must bring the
    # rest (they asked only above the highest number r0 had seen, and r0 stayed behind).
    net = make_net(3, seed=3)
    net.partition({"r0"}, {"r1", "r2"})
    for k in range(400):
        net.put("r1", f"k{k}", "v")
        net.run_for(0.002)
    net.run_for(0.5)
    assert len(net.kv("r1")) == 400 and net.kv("r0") == {}
    net.heal()
    write(net, "r1", "after", "x")
    assert net.run_until(lambda: len(net.kv("r0")) == 401, 10.0), len(net.kv("r0"))
    assert agreement_problems(net) == []
    net.check()


def test_a_resent_pre_accept_keeps_the_leaders_attributes_so_recovery_keeps_the_order() -> None:
    """Found by `labctl sim explore -p epaxos` (seed 203495): a command leader cut off from
    its replies resent PreAccept with the union of the replies it had, and replicas that
    first heard of the command from the resend took those for the leader's own attributes.
    Recovery then saw two sets of "original" attributes, picked the one that missed a
    committed interfering command, and two replicas executed the pair in different orders."""
    m = Manual(5)  # thrifty: r0's fast quorum is r1, r2; r2's is r3, r4
    m.client("r0", put("a", value="1"))
    m.client("r2", put("b", value="2"))
    # b fast-commits at r2 over r3 and r4, who never heard of a.
    m.deliver("PreAccept", src="r2")
    m.deliver("PreAcceptReply", dst="r2")
    # (b's Commits wait in the outbox: delivered with the recovery's messages below.)
    assert m.replicas["r2"].fast == 1
    # a reaches r1 (knows nothing: same attributes) and r2 (knows b: more deps); only r2's
    # reply gets back to r0, which is then cut off from every reply.
    m.deliver("PreAccept", src="r0")
    m.deliver("PreAcceptReply", src="r2", dst="r0")
    m.drop(dst="r0")
    first = m.replicas["r1"].instances[(0, 1)]
    # r0's resend timer: the PreAccept goes again to those that did not answer.
    m.now += 1.0
    p = m.replicas["r0"]
    m._take("r0", p.on_tick(m.now))
    resent = [msg for s, _, msg in m.outbox if s == "r0" and isinstance(msg, PreAccept)]
    assert resent, "the command leader resends its PreAccept"
    assert all((x.seq, x.deps) == (first.seq, first.deps) for x in resent)
    m.deliver("PreAccept", src="r0")
    m.drop(dst="r0")
    # r3 and r4 know b, so their votes for a differ from the leader's: not its own.
    assert not m.replicas["r3"].instances[(0, 1)].orig
    # r4 recovers a without r0; every message but those to r0 is delivered.
    m.recover("r4", (0, 1))
    for _ in range(20):
        m.drop(dst="r0")
        if not m.outbox:
            break
        for kind in ("Prepare", "PrepareReply", "TryPreAccept", "TryPreAcceptReply",
                     "PreAccept", "PreAcceptReply", "Accept", "AcceptReply", "Commit"):  # fmt: skip
            m.deliver(kind)
    m.client("r1", put("c", value="3"))  # nothing stays blocked: a later write executes
    a = m.replicas["r4"].instances[(0, 1)]
    b = m.replicas["r4"].instances[(2, 1)]
    assert a.status == COMMITTED and b.status == COMMITTED
    # Interfering commands: at least one depends on the other, so one order everywhere.
    assert a.deps[2] >= 1 or b.deps[0] >= 1, (a.deps, b.deps)
    assert committed_attributes({i: m.replicas[i] for i in m.ids if i != "r0"}) == []
    orders = {i: [r for r in m.applied[i] if r in ("a", "b")] for i in m.ids if i != "r0"}
    assert len({tuple(o) for o in orders.values()}) == 1, orders
