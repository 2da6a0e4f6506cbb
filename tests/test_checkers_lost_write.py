"""Lost write: an ok write missing from the final state; fail and info ops are never lost."""

from __future__ import annotations

from typing import Any

from labctl.checkers.lost_write import LostWriteChecker


def applied(src: str, t: float, index: int, rid: str) -> dict[str, Any]:
    return {"kind": "applied", "src": src, "t": t, "index": index, "term": 1,
            "request_id": rid, "op": "put", "key": "x", "value": "1", "duplicate": False,
            "result": "ok"}  # fmt: skip


def leader(src: str, t: float, term: int) -> dict[str, Any]:
    return {"kind": "became_leader", "src": src, "t": t, "term": term, "how": "elected"}


def op(rid: str, t: float, status: str, kind: str = "put") -> list[dict[str, Any]]:
    proc = rid.split(":")[0]
    return [
        {"type": "invoke", "t": t, "process": proc, "request_id": rid, "op": kind, "key": "x",
         "value": "1"},
        {"type": status, "t": t + 0.01, "process": proc, "request_id": rid, "op": kind,
         "key": "x", "seq": None},
    ]  # fmt: skip


def run(events: list[dict[str, Any]], history: list[dict[str, Any]]) -> list:
    c = LostWriteChecker()
    for e in events:
        assert c.on_event(e) == []  # decided only at the end
    for h in history:
        assert c.on_history(h) == []
    return c.finish()


def test_acked_write_absent_from_every_replica() -> None:
    events = [leader("r0", 0, 1), applied("r0", 1, 1, "c0:1"), applied("r1", 1, 1, "c0:1")]
    (v,) = run(events, op("c0:1", 0.5, "ok") + op("c1:1", 0.6, "ok"))
    assert (v.kind, v.nodes) == ("lost-write", ["r0", "r1"])
    assert v.detail == "acknowledged put x=1 (c1:1) is absent from every replica"
    assert v.evidence["request_id"] == "c1:1"


def test_acked_write_overwritten_by_the_final_leader() -> None:
    # r0 led term 1 and acknowledged c0:2 at index 2; r1 won term 2 and put c1:5 there.
    events = [
        leader("r0", 0, 1),
        applied("r0", 1.0, 1, "c0:1"), applied("r1", 1.0, 1, "c0:1"),
        applied("r0", 2.0, 2, "c0:2"),
        leader("r1", 3.0, 2),
        applied("r1", 4.0, 2, "c1:5"), applied("r1", 4.5, 3, "c1:6"),
    ]  # fmt: skip
    history = op("c0:2", 1.9, "ok") + op("c1:5", 3.9, "ok") + op("c1:6", 4.4, "ok")
    (v,) = run(events, history)
    assert (v.t, v.nodes) == (4.0, ["r1"])
    assert v.evidence["index"] == 2 and v.evidence["instead"] == {"r1": "c1:5"}
    assert "final leader r1 of term 2" in v.detail


def test_near_miss_final_leader_not_applied_that_far_yet() -> None:
    events = [leader("r0", 0, 1), applied("r0", 1.0, 1, "c0:1"), leader("r1", 2.0, 2)]
    assert run(events, op("c0:1", 0.9, "ok")) == []


def test_failed_write_missing_is_not_lost() -> None:
    events = [leader("r0", 0, 1), applied("r0", 1, 1, "c0:1")]
    assert run(events, op("c0:1", 0.9, "ok") + op("c0:2", 1.5, "fail")) == []


def test_info_write_may_be_present_or_missing() -> None:
    events = [leader("r0", 0, 1), applied("r0", 1, 1, "c0:1")]
    assert run(events, op("c0:1", 0.9, "info") + op("c0:2", 1.5, "info")) == []


def test_reads_are_never_lost_writes_and_orders_are() -> None:
    events = [leader("r0", 0, 1)]
    found = run(events, op("c0:1", 1, "ok", "get") + op("c0:2", 2, "ok", "order"))
    assert [v.evidence["request_id"] for v in found] == ["c0:2"]


def test_labctl_client_completions_nest_the_reply() -> None:
    # `labctl client` writes op but not key/seq at the top level of its completion.
    history = [
        {"type": "invoke", "t": 1, "process": "cli-1", "request_id": "cli-1:a", "op": "put",
         "key": "x", "value": "1"},
        {"type": "ok", "t": 2, "process": "cli-1", "request_id": "cli-1:a", "op": "put",
         "reply": {"status": "ok", "node": "r0", "term": 1, "seq": 4}},
    ]  # fmt: skip
    (v,) = run([applied("r0", 1, 1, "other")], history)
    assert v.evidence["seq"] == 4
