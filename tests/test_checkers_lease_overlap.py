"""Lease overlap: two valid leases at one true time; touching leases are not flagged."""

from __future__ import annotations

from typing import Any

from labctl.checkers.lease_overlap import LeaseOverlapChecker


def lease(src: str, t: float, term: int, until: float | None) -> dict[str, Any]:
    rec = {"kind": "lease", "src": src, "t": t, "term": term, "expiry": until}
    if until is not None:
        rec["expiry_true"] = until
    return rec


def feed(records: list[dict[str, Any]]) -> list:
    c = LeaseOverlapChecker()
    return [v for r in records for v in c.on_event(r)]


def test_overlapping_leases() -> None:
    # r0 was paused holding a lease to 10.0; r1's clock runs fast and it takes one at 9.5.
    (v,) = feed([lease("r0", 8.0, 1, 10.0), lease("r1", 9.5, 2, 11.5)])
    assert (v.kind, v.t, v.nodes) == ("lease-overlap", 9.5, ["r0", "r1"])
    assert v.evidence["overlap"] == [9.5, 10.0]
    assert v.evidence["leases"]["r0"] == {"term": 1, "from": 8.0, "until": 10.0}


def test_a_renewal_into_anothers_lease() -> None:
    found = feed([lease("r1", 5.0, 2, 7.0), lease("r0", 4.0, 1, 5.0), lease("r0", 4.9, 1, 6.0)])
    assert [v.nodes for v in found] == [["r0", "r1"]]


def test_one_violation_per_pair_of_tenures() -> None:
    records = [lease("r0", 1.0, 1, 3.0)] + [lease("r1", 1.0 + i / 10, 2, 3.0) for i in range(5)]
    assert len(feed(records)) == 1
    assert len(feed([*records, lease("r0", 2.0, 3, 4.0)])) == 2  # r0's new term: new tenure


def test_near_miss_consecutive_leases_touch() -> None:
    assert (
        feed([lease("r0", 1.0, 1, 2.0), lease("r1", 2.0, 2, 3.0), lease("r0", 3.0, 3, 4.0)]) == []
    )


def test_near_miss_lease_given_up_or_holder_exited() -> None:
    assert feed([lease("r0", 1.0, 1, 5.0), lease("r0", 2.0, 1, None), lease("r1", 3, 2, 6)]) == []
    exited = {"kind": "process.exit", "src": "supervisor", "t": 2.0, "node": "r0", "code": -9}
    assert feed([lease("r0", 1.0, 1, 5.0), exited, lease("r1", 3.0, 2, 6.0)]) == []


def test_near_miss_a_renewal_that_shortens_the_lease() -> None:
    # r0's renewal at 2.0 ends at 2.5 (its clock jumped): the old end 5.0 no longer counts.
    assert feed([lease("r0", 1.0, 1, 5.0), lease("r0", 2.0, 1, 2.5), lease("r1", 3, 2, 6)]) == []
