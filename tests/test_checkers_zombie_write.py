"""Zombie write: the broker accepting a superseded token; equal tokens and rejects are fine."""

from __future__ import annotations

from typing import Any

from labctl.checkers.zombie_write import ZombieWriteChecker


def write(t: float, node: str, token: int, accepted: bool, highest: int, rid: str = "c0:1",
          seq: int = 1) -> dict[str, Any]:  # fmt: skip
    return {"kind": "broker.write", "src": "broker", "t": t, "from": node, "token": token,
            "node": node, "seq": seq, "request_id": rid, "accepted": accepted,
            "highest": highest}  # fmt: skip


def feed(records: list[dict[str, Any]]) -> list:
    c = ZombieWriteChecker()
    return [v for r in records for v in c.on_event(r)]


def test_deposed_leader_write_accepted_without_fencing() -> None:
    (v,) = feed([write(1, "r0", 1, True, 1), write(2, "r1", 2, True, 2),
                 write(3, "r0", 1, True, 2, rid="c0:9")])  # fmt: skip
    assert (v.kind, v.t, v.nodes) == ("zombie-write", 3, ["r0", "r1"])
    assert v.evidence["token"] == 1 and v.evidence["highest"] == 2
    assert v.evidence["highest_from"] == "r1" and v.evidence["request_id"] == "c0:9"


def test_the_brokers_own_highest_covers_writes_we_missed() -> None:
    (v,) = feed([write(5, "r0", 3, True, 4)])
    assert v.nodes == ["r0"] and v.evidence["highest"] == 4


def test_one_violation_per_node_and_token() -> None:
    records = [write(1, "r1", 2, True, 2)] + [write(2 + i, "r0", 1, True, 2) for i in range(5)]
    assert len(feed(records)) == 1


def test_near_misses_equal_token_and_rejected_writes() -> None:
    records = [
        write(1, "r0", 1, True, 1),
        write(2, "r0", 1, True, 1, seq=2),  # the same leader, same term: its own token
        write(3, "r1", 2, True, 2),
        write(4, "r0", 1, False, 2),  # fencing on: the broker refused it
    ]
    assert feed(records) == []
