"""View changes: a crashed primary is replaced, prepared requests survive into the new
view at their sequence number, and view changes cascade past a faulty next primary."""

from __future__ import annotations

from protocols.base import events as ev
from protocols.pbft.messages import Commit, NewView, Prepare
from protocols.simnet import SimNet
from tests.pbft_helpers import applied_ids, make_net, put_all, send_all, wait_accepted, write


def active_view(net: SimNet, nodes: list[str]) -> int | None:
    views = {net.status(i)["view"] for i in nodes if net.status(i)["role"] != "view_changing"}
    return views.pop() if len(views) == 1 else None


def test_a_crashed_primary_is_replaced_and_progress_continues() -> None:
    net = make_net(4)
    write(net, "a", "1")
    net.crash("r0")
    rid = put_all(net, "b", "2")
    answer = wait_accepted(net, rid, 3.0)
    assert answer[0] == "ok" and answer[1] == 2
    live = ["r1", "r2", "r3"]
    for node in live:
        s = net.status(node)
        assert s["view"] == 1 and s["primary"] == "r1" and s["view_changes"] == 1
        assert net.kv(node) == {"a": "1", "b": "2"}
    assert net.status("r1")["role"] == "primary"
    leaders = [(e.node, e.data["term"]) for e in net.events_of(ev.BECAME_LEADER)]
    assert ("r1", 1) in leaders
    changes = net.events_of("pbft.view_change")
    assert {(e.data["from"], e.data["to"]) for e in changes} == {(0, 1)}
    assert len(net.events_of("pbft.new_view")) == 3
    # More requests in the new view, then the old primary comes back and catches up.
    for i in range(5):
        write(net, f"k{i}", str(i))
    net.restart("r0")
    rid = put_all(net, "c", "3")
    wait_accepted(net, rid)
    assert net.run_until(lambda: net.kv("r0") == net.kv("r1"), 3.0), net.status("r0")
    net.check()


def test_a_request_prepared_at_some_replicas_survives_at_its_sequence_number() -> None:
    net = make_net(4)
    write(net, "a", "1")
    # Seq 2 prepares at r1 and r2 only: r3 gets no prepares and nobody gets a commit.
    net.filter = lambda src, dst, m: (
        not isinstance(m, Commit) and not (isinstance(m, Prepare) and dst == "r3")
    )
    rid = put_all(net, "b", "2")
    net.run_for(0.05)
    assert [net.status(i)["prepared"] for i in net.ids] == [2, 2, 2, 1]
    assert all(net.status(i)["applied_index"] == 1 for i in net.ids)
    net.filter = None
    net.crash("r0")
    answer = wait_accepted(net, rid, 3.0)
    assert answer == ("ok", 2, "2", None)  # the same sequence number, in view 1
    for node in ("r1", "r2", "r3"):
        assert net.applied(node)[1][0] == 2 and applied_ids(net, node)[1] == rid
        assert net.status(node)["view"] == 1
    new_view = next(s.msg for s in net.sent if isinstance(s.msg, NewView))
    # No checkpoint yet: min-s is 0, so both prepared numbers are re-issued.
    reissued = [(pp.seq, pp.command.request_id if pp.command else None)
                for pp in new_view.pre_prepares]  # fmt: skip
    assert reissued == [(1, "c0-1"), (2, rid)]
    net.check()


def test_a_gap_in_the_new_view_is_filled_with_the_null_request() -> None:
    net = make_net(4)
    write(net, "a", "1")
    # Seq 2 gets lost entirely (its pre-prepare reaches nobody); seq 3 prepares at r1, r2.
    first = {"done": False}

    def rule(src: str, dst: str, m: object) -> bool:
        if isinstance(m, Commit):
            return False
        if getattr(m, "seq", None) == 2 and type(m).__name__ == "PrePrepare":
            return False
        return not (isinstance(m, Prepare) and dst == "r3")

    net.filter = rule
    lost = put_all(net, "b", "2")
    net.run_for(0.01)
    kept = put_all(net, "c", "3", client="c1")
    net.run_for(0.05)
    first["done"] = True
    net.filter = None
    net.crash("r0")
    # (Answers name the request's execution position: seq 2 became the null request.)
    assert wait_accepted(net, kept, 3.0) == ("ok", 2, "3", None)
    new_view = next(s.msg for s in net.sent if isinstance(s.msg, NewView))
    assert [(pp.seq, pp.command is None) for pp in new_view.pre_prepares] == [
        (1, False),
        (2, True),
        (3, False),
    ]
    # The lost request was pending everywhere: the new primary gives it a new number.
    assert wait_accepted(net, lost, 3.0)[1] == 3
    assert net.status("r1")["applied_index"] == 4  # at sequence number 4
    net.check()


def test_view_changes_cascade_when_the_next_primary_is_down_too() -> None:
    net = make_net(7, view_change_timeout=0.2)
    write(net, "a", "1")
    net.crash("r0")
    net.crash("r1")  # the primary of view 1
    rid = put_all(net, "b", "2")
    answer = wait_accepted(net, rid, 5.0)
    assert answer[0] == "ok"
    live = [f"r{i}" for i in range(2, 7)]
    assert active_view(net, live) == 2
    assert net.status("r2")["role"] == "primary"
    tos = sorted({e.data["to"] for e in net.events_of("pbft.view_change")})
    assert tos == [1, 2]
    net.check()


def test_a_silent_next_primary_is_skipped_as_well() -> None:
    net = make_net(4, view_change_timeout=0.2)
    write(net, "a", "1")
    net.set_byzantine("r1", "silent")  # the primary of view 1 says nothing, ever
    net.crash("r0")
    # r0 is down and r1 lies: two faults with f = 1 is too many to make progress, so
    # bring r0 back as a backup once the view change has started.
    rid = put_all(net, "b", "2")
    assert net.run_until(lambda: net.status("r2")["view"] >= 1, 2.0)
    net.restart("r0")
    send_all(net, net.command("put", request_id=rid, key="b", value="2"))
    assert wait_accepted(net, rid, 6.0)[0] == "ok"
    assert active_view(net, ["r0", "r2", "r3"]) == 2  # r2 leads view 2
    net.check()


def test_a_replica_that_missed_the_new_view_gets_it_again() -> None:
    net = make_net(4)
    write(net, "a", "1")
    lost: list[NewView] = []

    def lose_first_new_view(src: str, dst: str, m: object) -> bool:
        if isinstance(m, NewView) and dst == "r3" and not lost:
            lost.append(m)
            return False
        return True

    net.filter = lose_first_new_view
    net.crash("r0")  # r3 is needed for a quorum of 3 in view 1
    rid = put_all(net, "b", "2")
    wait_accepted(net, rid, 3.0)
    assert lost, "the scenario did not lose a NEW-VIEW"
    # r3 re-sent its view-change, was answered with the NEW-VIEW, and view 1 held.
    assert [net.status(i)["view"] for i in ("r1", "r2", "r3")] == [1, 1, 1]
    assert net.status("r3")["role"] == "backup"
    assert net.run_until(lambda: net.kv("r3") == net.kv("r1") == {"a": "1", "b": "2"}, 1.0)
    net.check()
