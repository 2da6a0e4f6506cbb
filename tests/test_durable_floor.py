"""Issue 14: the per-index checkers settle and forget what lies below every replica's
durable floor (labctl/checkers/durable_floor.py), and still catch what they caught.

(a) a long clean run keeps a bounded number of rows, where without floors they grow;
(b) a replica that applies a different command below the settled floor (one whose disk
    lost its snapshot, repaired from its peers' logs) is still a divergence, the same
    command is not, and a snapshot's image saying what it holds is not compared;
(c) a majority's disks losing their newest records after snapshots have settled rows
    gives the same violations as the same run checked without any floor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl import simrun
from labctl.checkers.base import CheckerConfig
from labctl.checkers.divergence import DivergenceChecker
from labctl.checkers.duplicate_apply import DuplicateApplyChecker
from labctl.checkers.lost_write import LostWriteChecker
from labctl.checkers.runner import CheckerSet
from labctl.scenario.format import load
from protocols.base import events as ev

NODES = ("r0", "r1", "r2")


def _checkers(checkers: CheckerSet) -> tuple[DivergenceChecker, LostWriteChecker, Any]:
    div = next(c for c in checkers.checkers if isinstance(c, DivergenceChecker))
    lost = next(c for c in checkers.checkers if isinstance(c, LostWriteChecker))
    dup = next(c for c in checkers.checkers if isinstance(c, DuplicateApplyChecker))
    return div, lost, dup


def _rows(checkers: CheckerSet) -> int:
    """What the three checkers hold per index and per write, in all."""
    div, lost, dup = _checkers(checkers)
    return (
        len(div.agreed)
        + len(div.by_index)
        + sum(len(c) for c in lost.at_index.values())
        + sum(len(a) for a in lost.applied.values())
        + len(lost.acked)
        + len(lost.invoked_label)
        + sum(len(s) for s in dup.first_index.values())
    )


def _clean_run(checkers: CheckerSet, ops: int, floor_every: int | None, sample_at: int) -> int:
    """`ops` writes, each invoked, applied on every node and acknowledged; every node says
    its floor each `floor_every` indices (a snapshot that far behind its applied index).
    Returns the rows held at op `sample_at`."""
    sampled = 0
    for i in range(1, ops + 1):
        t, rid = i * 0.001, f"c0:{i}"
        checkers.on_history(
            {"t": t, "type": "invoke", "process": "c0", "request_id": rid, "op": "put",
             "key": f"k{i % 5}", "value": str(i)}
        )  # fmt: skip
        for n in NODES:
            checkers.on_event(
                {"t": t, "src": n, "kind": ev.APPLIED, "index": i, "term": 1,
                 "request_id": rid, "op": "put", "key": f"k{i % 5}", "value": str(i),
                 "duplicate": False, "result": "ok"}
            )  # fmt: skip
        checkers.on_history(
            {"t": t, "type": "ok", "process": "c0", "request_id": rid, "op": "put", "seq": i}
        )
        if floor_every and i % floor_every == 0:
            for n in NODES:
                checkers.on_event(
                    {"t": t, "src": n, "kind": ev.DURABLE_FLOOR, "index": i - floor_every // 2,
                     "replicas": list(NODES)}
                )  # fmt: skip
        if i == sample_at:
            sampled = _rows(checkers)
    return sampled


def _set() -> CheckerSet:
    return CheckerSet(CheckerConfig(linearizability=False))


def test_rows_below_every_replicas_floor_are_released_and_stay_flat() -> None:
    checkers = _set()
    half = _clean_run(checkers, 60_000, floor_every=1_000, sample_at=30_000)
    full = _rows(checkers)
    # Above the floor: up to 1,500 indices a node; below it, duplicate-apply's session
    # window (20,000 writes a node). Twice the operations, the same rows.
    assert full <= half * 1.05, (half, full)
    assert full < 60_000 * 3, full
    assert checkers.finish() == [] and checkers.violations == []
    # The control: without floors every write stays, in every table.
    control = _set()
    _clean_run(control, 10_000, floor_every=None, sample_at=0)
    assert _rows(control) >= 10_000 * 8


def test_a_node_missing_one_floor_holds_every_row() -> None:
    checkers = _set()
    for i in range(1, 201):
        for n in NODES[:2]:  # r2 is behind: it applied nothing yet
            checkers.on_event(
                {"t": i, "src": n, "kind": ev.APPLIED, "index": i, "term": 1,
                 "request_id": f"w{i}", "op": "put", "key": "k", "value": str(i)}
            )  # fmt: skip
    for n in NODES[:2]:
        checkers.on_event(
            {"t": 300, "src": n, "kind": ev.DURABLE_FLOOR, "index": 150, "replicas": list(NODES)}
        )
    div, _, _ = _checkers(checkers)
    assert div.settled == 0 and len(div.agreed) == 200
    # r2 catches up with a different command at index 5: still compared, still caught.
    found = checkers.on_event(
        {"t": 301, "src": "r2", "kind": ev.APPLIED, "index": 5, "term": 1,
         "request_id": "other", "op": "put", "key": "k", "value": "x"}
    )  # fmt: skip
    assert [v.kind for v in found] == ["divergence"]


def _settled_set() -> CheckerSet:
    checkers = _set()
    for i in range(1, 101):
        for n in NODES:
            checkers.on_event(
                {"t": i, "src": n, "kind": ev.APPLIED, "index": i, "term": 1,
                 "request_id": f"w{i}", "op": "put", "key": "k", "value": str(i)}
            )  # fmt: skip
    for n in NODES:
        checkers.on_event(
            {"t": 200, "src": n, "kind": ev.DURABLE_FLOOR, "index": 80, "replicas": list(NODES)}
        )
    div, _, _ = _checkers(checkers)
    assert div.settled == 80 and 5 not in div.agreed
    # r1's disk loses its snapshot (`--corrupt lose`: no checksum sees it): it restarts
    # and says no floor, and is repaired from its peers' logs, applying below the floor.
    checkers.on_event({"t": 201, "src": "r1", "kind": "node.starting"})
    return checkers


def test_a_different_command_applied_below_the_settled_floor_is_a_divergence() -> None:
    checkers = _settled_set()
    same = checkers.on_event(
        {"t": 202, "src": "r1", "kind": ev.APPLIED, "index": 5, "term": 1,
         "request_id": "w5", "op": "put", "key": "k", "value": "5"}
    )  # fmt: skip
    assert same == []
    image = checkers.on_event(
        {"t": 202, "src": "r1", "kind": ev.APPLIED, "index": 6, "term": 1,
         "request_id": "elsewhere", "op": "put", "from_snapshot": True}
    )  # fmt: skip
    assert image == []  # an image's report is not compared (what made it was)
    found = checkers.on_event(
        {"t": 203, "src": "r1", "kind": ev.APPLIED, "index": 7, "term": 2,
         "request_id": "forged", "op": "put", "key": "k", "value": "x"}
    )  # fmt: skip
    assert [v.kind for v in found] == ["divergence"]
    assert "index 7 holds put k=x (forged) on r1" in found[0].detail
    assert "settled" in found[0].detail


class _NoFloors(simrun.CheckingSink):
    """The supervisor's part with every durable_floor record withheld from the checkers:
    what they would say if no protocol reported one (nothing settled, all rows kept)."""

    def event(self, rec: dict[str, Any]) -> None:
        if rec["kind"] != ev.DURABLE_FLOOR:
            super().event(rec)


def _verdict(sink: simrun.CheckingSink, path: Path) -> list[tuple[str, str]]:
    sc = load(path)
    simrun.simulate(sc, sink)
    return sorted((v["kind"], v["detail"]) for v in sink.violations)


SCENARIO = """
name = "floor-lose"
description = "snapshots settle the checkers' rows, then a majority's disks lose records"
protocol = "raft"
nodes = 3
seed = 7
duration = "8s"

[options]
snapshot_threshold = 100
catch_up_entries = 20

[workload]
kind = "kv"
rate = 300
clients = 4
target = "leader"

[[step]]
at = "3.9s"
fault = "pause"
node = "leader"
for = "3s"

[[step]]
at = "4s"
fault = "disk"
node = "followers"
corrupt = "lose"
"""


def test_a_majority_losing_records_after_snapshots_is_caught_as_without_floors(
    tmp_path: Path,
) -> None:
    path = tmp_path / "floor-lose.toml"
    path.write_text(SCENARIO)
    with_floor = simrun.CheckingSink(load(path))
    found = _verdict(with_floor, path)
    div, lost, _ = _checkers(with_floor.checkers)
    assert div.settled > 500 and lost.settled > 500  # rows were settled and forgotten
    kinds = {k for k, _ in found}
    assert {"lost-write", "divergence"} <= kinds, kinds
    assert found == _verdict(_NoFloors(load(path)), path)


def test_a_node_told_to_lie_no_longer_holds_the_rows() -> None:
    """A byzantine node's records are ignored from the fault on, its floors too: the last
    floor it said honestly held every row of a PBFT run with one liar, for good."""
    checkers = _set()
    checkers.on_event({"t": 0.0, "src": "supervisor", "kind": "fault", "fault": "byzantine",
                       "node": "r2", "mode": "forge"})  # fmt: skip
    for i in range(1, 201):
        for n in NODES:
            checkers.on_event(
                {"t": i, "src": n, "kind": ev.APPLIED, "index": i, "term": 1,
                 "request_id": f"w{i}", "op": "put", "key": "k", "value": str(i)}
            )  # fmt: skip
    for n in NODES:  # r2's floor is a liar's: ignored
        checkers.on_event(
            {"t": 300, "src": n, "kind": ev.DURABLE_FLOOR, "index": 150, "replicas": list(NODES)}
        )
    div, lost, _ = _checkers(checkers)
    assert div.settled == 150 and len(div.agreed) == 50
    assert lost.floor.settled == 150


def test_pbft_decisions_per_sequence_number_are_released_below_the_floor() -> None:
    from labctl.checkers.split_brain import SplitBrainChecker

    nodes = ["r0", "r1", "r2", "r3"]
    checker = SplitBrainChecker()

    def decide(node: str, index: int, rid: str) -> list[Any]:
        return checker.on_event(
            {"t": index * 0.001, "src": node, "kind": ev.APPLIED, "index": index, "view": 0,
             "request_id": rid, "op": "put", "key": "k", "value": rid}
        )  # fmt: skip

    for i in range(1, 20_001):
        for n in nodes:
            assert decide(n, i, f"w{i}") == []
        if i % 1000 == 0:
            for n in nodes:
                checker.on_event({"t": i * 0.001, "src": n, "kind": ev.DURABLE_FLOOR,
                                  "index": i - 500, "replicas": nodes})  # fmt: skip
    assert len(checker.decided) <= 1500 and len(checker.labels) <= 1500
    # Two requests decided at one sequence number above the floor: still split brain.
    decide("r0", 20_001, "a")
    found = decide("r1", 20_001, "b")
    assert [v.kind for v in found] == ["split-brain"]
