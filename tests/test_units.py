"""Small pure pieces: durations, the fault vocabulary, the node clock, the state machine."""

from __future__ import annotations

import pytest

from faults.linkplan import link_table
from faults.model import FaultError, parse_fault
from nodes.clock import NodeClock
from nodes.state_machine import StateMachine
from protocols.base import Command, DurationError, Order, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("3", 3.0), (2, 2.0), ("500us", 0.0005)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "2x", "-1s", "1.2.3s", "fast", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_fault_parsing_covers_the_vocabulary() -> None:
    p = parse_fault({"fault": "partition", "from": ["leader"], "to": "r1,r2"})
    assert (p.src, p.dst, p.oneway) == (("leader",), ("r1", "r2"), False)
    assert (
        parse_fault({"fault": "delay", "from": "r0", "to": "r1", "ms": 50, "jitter": "10"}).jitter
        == 0.01
    )
    assert parse_fault({"fault": "delay", "from": "r0", "to": "r1", "ms": "0.05s"}).delay == 0.05
    assert parse_fault({"fault": "pause", "node": "r1", "for": "500ms"}).duration == 0.5
    assert parse_fault({"fault": "clock", "node": "r0", "offset": "-7ms"}).offset == -0.007
    assert parse_fault({"fault": "disk", "node": "r0", "fsync": "12ms", "stall": "9s"}).stall == 9.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"fault": "meteor"}, "unknown fault 'meteor'"),
        ({"fault": "pause", "node": "r0", "for": "2x"}, "'for': not a duration"),
        ({"fault": "pause", "node": "r0", "forever": 1}, "no parameter 'forever'"),
        ({"fault": "loss", "from": "r0", "to": "r1", "p": 2}, "between 0 and 1"),
        ({"fault": "delay", "from": "r0", "to": "r1"}, "needs 'ms'"),
        ({"fault": "partition", "from": "r0"}, "needs both 'from' and 'to'"),
        ({"fault": "clock", "node": "r0"}, "needs 'offset' and/or 'drift'"),
    ],
)
def test_bad_faults_name_the_parameter(spec: dict, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        parse_fault(spec)


def test_link_table_folds_faults_in_order() -> None:
    faults = [
        parse_fault({"fault": "partition", "from": "r0", "to": "r1"}),
        parse_fault({"fault": "delay", "from": "r0", "to": "r2", "ms": 10}),
        parse_fault({"fault": "delay", "from": "r0", "to": "r2", "ms": 30}),
    ]
    table = {(x["src"], x["dst"]): x["rule"] for x in link_table(faults)}
    assert table[("r0", "r1")] == {"drop": True}
    assert table[("r1", "r0")] == {"drop": True}  # both ways unless oneway
    assert table[("r0", "r2")]["delay"] == 0.03
    assert ("r2", "r0") not in table  # delay is one-way


def test_clock_offset_and_drift() -> None:
    t = [100.0]
    clock = NodeClock(lambda: t[0])
    assert clock.now() == 100.0
    clock.set(offset=0.5)
    assert clock.now() == 100.5
    clock.set(drift=0.1)  # no jump, then 10% fast
    assert clock.now() == pytest.approx(100.5)
    t[0] = 110.0
    assert clock.now() == pytest.approx(111.5)
    assert clock.to_true(clock.now()) == pytest.approx(110.0)
    assert clock.to_true(120.0) == pytest.approx(110.0 + 8.5 / 1.1)


def _cmd(rid: str, op: str, **kw: object) -> Command:
    return Command(request_id=rid, client="c0", op=op, **kw)  # type: ignore[arg-type]


def test_state_machine_kv_and_cas() -> None:
    sm = StateMachine()
    assert sm.apply(1, 1, _cmd("a", "put", key="x", value="1")).status == "ok"
    assert sm.apply(2, 1, _cmd("b", "cas", key="x", expected="0", value="2")).status == "fail"
    assert sm.apply(3, 1, _cmd("c", "cas", key="x", expected="1", value="2")).status == "ok"
    assert sm.read("x") == "2" and sm.applied_index == 3


def test_exactly_once_answers_a_retry_from_the_session_table() -> None:
    order = Order("o1", "riya", "buy", 200, "ALPHA")
    once, twice = StateMachine(exactly_once=True), StateMachine(exactly_once=False)
    for sm in (once, twice):
        sm.apply(1, 1, _cmd("r1", "order", order=order))
        again = sm.apply(2, 1, _cmd("r1", "order", order=order))
        assert again.duplicate
    assert len(once.orders) == 1  # the retry got the original result, seq 1
    assert once.apply(3, 1, _cmd("r1", "order", order=order)).index == 1
    assert len(twice.orders) == 2  # the double buy


def test_state_machine_snapshot_round_trip() -> None:
    sm = StateMachine(exactly_once=True)
    sm.apply(1, 1, _cmd("a", "put", key="x", value="1"))
    copy = StateMachine(exactly_once=True)
    copy.restore(sm.snapshot())
    assert copy.read("x") == "1" and copy.applied_index == 1 and "a" in copy.sessions


def test_a_bundle_carries_several_messages_and_never_hides_a_bad_one() -> None:
    from nodes.wire import Codec, WireError
    from protocols.base import Bundle, ClientReply

    codec = Codec()
    replies = [ClientReply(f"c0:{i}", "ok", "r0", seq=i) for i in range(3)]
    one = codec.encode(replies[0])
    assert codec.bundle([one]) == one  # a single message travels as itself
    frame = codec.bundle([codec.encode(r) for r in replies])
    assert codec.decode_all(frame) == (replies, 0)
    nested = codec.encode(Bundle([frame, one, b"\xc1garbage"]))
    assert codec.decode_all(nested) == ([replies[0]], 2)  # nested and garbage: counted
    with pytest.raises(WireError):
        codec.decode_all(b"\xc1")


def test_a_pbft_client_believes_f_plus_1_matching_replies_only() -> None:
    import random

    from nodes.operations import Client, Op
    from protocols.base import ClientReply

    client = Client(name="c0", replicas=["r0", "r1", "r2", "r3"], kind="kv", target="leader",
                    reads=["log"], keys=1, timeout=1.0, retries=1, max_inflight=4,
                    rng=random.Random(1), quorum=2, broadcast=True)  # fmt: skip
    assert client.pick_node() == "all"
    op = Op(Command(request_id="c0:1", client="c0", op="get", key="x"), "log", 0.0, "all")
    forged = ClientReply("c0:1", "ok", "r3", seq=5, value="forged-by-r3")
    honest = [ClientReply("c0:1", "ok", n, seq=5, value="1") for n in ("r0", "r1")]
    assert client.vote(op, forged) is None
    assert client.vote(op, honest[0]) is None  # one honest reply is not enough
    assert client.vote(op, forged) is None  # the same liar twice is still one replica
    assert client.vote(op, honest[1]) == honest[1]


def test_applied_events_are_written_as_the_supervisor_writes_any_event(tmp_path) -> None:
    from labctl.rundir import RunDir

    run = RunDir(tmp_path, "lab", "raft")
    entries = [
        {"index": 1, "term": 2, "request_id": 'a"},{"index', "op": "put", "value": None},
        {},
    ]
    assert run.applied_events(1.25, "r0", [*entries, "not a dict"]) == 1
    for entry in entries:
        run.event({"t": 1.25, "src": "r0", "kind": "applied", **entry})
    run.flush()
    lines = (run.path / "events.jsonl").read_bytes().splitlines()
    assert lines[:2] == lines[2:]
