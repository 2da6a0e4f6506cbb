"""Split brain: two nodes leading in one term is flagged; a handover across terms is not."""

from __future__ import annotations

from typing import Any

from labctl.checkers.split_brain import SplitBrainChecker


def leader(src: str, t: float, term: int, how: str = "elected") -> dict[str, Any]:
    return {"kind": "became_leader", "src": src, "t": t, "term": term, "how": how}


def feed(records: list[dict[str, Any]]) -> list:
    c = SplitBrainChecker()
    return [v for r in records for v in c.on_event(r)]


def test_two_leaders_in_one_term_is_split_brain() -> None:
    (v,) = feed([leader("r0", 1.0, 1, "initial"), leader("r1", 2.5, 1, "self-promoted")])
    assert (v.kind, v.t, v.nodes) == ("split-brain", 2.5, ["r0", "r1"])
    assert v.detail == "two leaders in term 1: r0, r1"
    assert v.evidence["leaders"]["r1"] == {"t": 2.5, "how": "self-promoted"}


def test_a_third_leader_in_the_same_term_is_reported_again() -> None:
    found = feed([leader("r0", 1, 1), leader("r1", 2, 1), leader("r2", 3, 1)])
    assert [v.nodes for v in found] == [["r0", "r1"], ["r0", "r1", "r2"]]
    assert found[1].detail == "3 leaders in term 1: r0, r1, r2"


def test_near_miss_leaders_at_once_in_different_terms() -> None:
    # r0 still thinks it leads term 1 while r1 leads term 2: a normal handover.
    assert feed([leader("r0", 1, 1), leader("r1", 2, 2), leader("r2", 3, 3)]) == []


def test_near_miss_same_node_again_in_its_term() -> None:
    # A restart replaying its WAL announces the same leadership again.
    assert feed([leader("r0", 1, 4), leader("r0", 9, 4)]) == []


def test_malformed_records_are_counted_not_raised() -> None:
    c = SplitBrainChecker()
    assert c.on_event({"kind": "became_leader", "src": "r0", "t": 1, "term": "one"}) == []
    assert c.on_event({"kind": "became_leader", "src": "r0", "term": True, "t": 1}) == []
    assert c.malformed == 2


def decided(src: str, t: float, index: int, rid: str, view: int) -> dict[str, Any]:
    return {"kind": "applied", "src": src, "t": t, "index": index, "term": 0, "view": view,
            "request_id": rid, "op": "put", "key": "x", "value": "1", "duplicate": False,
            "result": "ok"}  # fmt: skip


def test_pbft_two_requests_decided_at_one_seq_in_one_view() -> None:
    c = SplitBrainChecker()
    records = [
        decided("r2", 1, 7, "c0:1", view=3),
        decided("r1", 2, 7, "c0:1", view=3),
        decided("r3", 3, 7, "c1:9", view=3),
        decided("r0", 4, 7, "c2:2", view=3),
    ]
    found = [v for r in records for v in c.on_event(r)]
    assert len(found) == 1  # once per (view, seq)
    (v,) = found
    assert (v.kind, v.t, v.nodes) == ("split-brain", 3, ["r2", "r3"])
    assert v.evidence == {"view": 3, "index": 7, "decided": {"r2": "c0:1", "r3": "c1:9"}}
    assert "seq 7 in view 3" in v.detail


def test_pbft_one_request_re_proposed_in_a_later_view_is_no_split_brain() -> None:
    c = SplitBrainChecker()
    records = [
        decided("r1", 1, 7, "c0:1", view=3),
        decided("r2", 2, 7, "c0:1", view=4),
        decided("r3", 3, 8, "c1:9", view=3),
        decided("r3", 4, 7, "c0:1", view=3),
    ]
    assert [v for r in records for v in c.on_event(r)] == []
