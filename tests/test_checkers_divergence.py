"""Divergence: different commands at one index on two replicas; agreement is not flagged."""

from __future__ import annotations

from typing import Any

from labctl.checkers.divergence import DivergenceChecker


def applied(src: str, t: float, index: int, rid: str, op: str = "put") -> dict[str, Any]:
    return {"kind": "applied", "src": src, "t": t, "index": index, "term": 1,
            "request_id": rid, "op": op, "key": "x", "value": "1", "duplicate": False,
            "result": "ok"}  # fmt: skip


def feed(records: list[dict[str, Any]]) -> list:
    c = DivergenceChecker()
    return [v for r in records for v in c.on_event(r)]


def test_different_request_ids_at_one_index() -> None:
    (v,) = feed([applied("r1", 1, 3, "c0:1"), applied("r0", 2, 3, "c1:9")])
    assert (v.kind, v.t, v.nodes) == ("divergence", 2, ["r0", "r1"])
    assert v.evidence == {"index": 3, "applied": {"r0": "c1:9", "r1": "c0:1"}}
    assert "index 3" in v.detail and "c0:1" in v.detail and "c1:9" in v.detail


def test_a_get_in_the_log_counts_like_any_command() -> None:
    assert len(feed([applied("r0", 1, 2, "c0:1", "get"), applied("r1", 2, 2, "c1:1")])) == 1


def test_reported_once_per_index() -> None:
    found = feed([applied("r0", 1, 2, "a"), applied("r1", 2, 2, "b"), applied("r2", 3, 2, "c")])
    assert len(found) == 1


def test_near_miss_same_commands_everywhere_and_replays() -> None:
    records = [applied(r, t, i, f"c0:{i}") for t, (r, i) in enumerate(
        [("r0", 1), ("r1", 1), ("r0", 2), ("r2", 1), ("r1", 2), ("r0", 1)])]  # fmt: skip
    assert feed(records) == []
