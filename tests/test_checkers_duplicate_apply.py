"""Duplicate apply: one request id executed twice on a replica, exactly-once aside."""

from __future__ import annotations

from typing import Any

import pytest

from labctl.checkers.duplicate_apply import DuplicateApplyChecker


def applied(src: str, t: float, index: int, rid: str, duplicate: bool = False,
            op: str = "order") -> dict[str, Any]:  # fmt: skip
    return {"kind": "applied", "src": src, "t": t, "index": index, "term": 1,
            "request_id": rid, "op": op, "key": "ALPHA", "value": "riya:buy:200",
            "duplicate": duplicate, "result": "ok"}  # fmt: skip


def feed(records: list[dict[str, Any]], exactly_once: bool = False) -> list:
    c = DuplicateApplyChecker(exactly_once=exactly_once)
    return [v for r in records for v in c.on_event(r)]


def test_the_double_buy_on_a_naive_replica() -> None:
    (v,) = feed([applied("r0", 1, 3, "c0:17"), applied("r0", 2, 5, "c0:17", duplicate=True)])
    assert (v.kind, v.t, v.nodes) == ("duplicate-apply", 2, ["r0"])
    assert v.evidence["indices"] == [3, 5] and v.evidence["request_id"] == "c0:17"
    assert v.detail == "r0 applied order ALPHA=riya:buy:200 (c0:17) twice, at indices 3 and 5"


def test_exactly_once_answering_from_the_session_table_is_fine() -> None:
    records = [applied("r0", 1, 3, "c0:17"), applied("r0", 2, 5, "c0:17", duplicate=True)]
    assert feed(records, exactly_once=True) == []


def test_exactly_once_that_executes_again_anyway_is_flagged() -> None:
    records = [applied("r0", 1, 3, "c0:17"), applied("r0", 2, 5, "c0:17", duplicate=False)]
    assert len(feed(records, exactly_once=True)) == 1


def test_a_duplicate_flag_before_any_record_of_the_first_apply() -> None:
    # The first execution was in a snapshot we saw no events for.
    (v,) = feed([applied("r1", 4, 9, "c2:1", duplicate=True)])
    assert "again at index 9" in v.detail
    assert feed([applied("r1", 4, 9, "c2:1", duplicate=True)], exactly_once=True) == []


def test_reported_once_per_request_id() -> None:
    records = [applied(r, i, i, "c0:1", duplicate=i > 1) for r in ("r0", "r1") for i in (1, 2, 3)]
    assert [v.nodes for v in feed(records)] == [["r0"]]


@pytest.mark.parametrize(
    "records",
    [
        # the same id on two replicas: replication, not duplication
        [applied("r0", 1, 3, "c0:1"), applied("r1", 2, 3, "c0:1")],
        # a restart replaying its WAL: same index again
        [applied("r0", 1, 3, "c0:1"), applied("r0", 5, 3, "c0:1")],
        # a read that reached the log twice changes nothing
        [applied("r0", 1, 3, "c0:1", op="get"), applied("r0", 2, 4, "c0:1", op="get")],
    ],
)
def test_near_misses(records: list[dict[str, Any]]) -> None:
    assert feed(records) == []


def test_a_restart_re_executing_in_another_order_is_not_a_second_execution() -> None:
    # EPaxos: before the crash r2 ran a then b; after it, from index 1 again, b then a.
    before = [applied("r2", 1, 1, "a"), applied("r2", 2, 2, "b")]
    after = [applied("r2", 3, 1, "b"), applied("r2", 4, 2, "a")]
    assert feed([*before, *after]) == []
    # ... while the same request twice within one run of the replica still is.
    (v,) = feed([*before, *after, applied("r2", 5, 3, "a")])
    assert v.evidence["indices"] == [2, 3]
