"""Schedules `sim explore` found violating a correct protocol, kept after the fix.

Each file in tests/found_scenarios/ is a shrunk scenario explore wrote for a real bug (its
header names the seed, what was seen, and the fix). With the fix the same schedule must be
clean. The unit test beside each fix shows the mechanism on its own; these show that the
schedule which found it, run the way a user runs it (`labctl sim run`'s checkers), stays
safe. Like the mutant scenarios, a shrunk schedule is tied to the code's timing: one that
no longer reaches its situation passes without proving much, so each fix keeps its own
targeted test too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import simrun
from labctl.scenario.format import load

FILES = sorted((Path(__file__).parent / "found_scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_a_schedule_that_once_broke_a_protocol_is_clean(path: Path) -> None:
    sc = load(path)
    assert not sc.mutate
    sink = simrun.CheckingSink(sc)
    lab, failure = simrun.simulate(sc, sink)
    assert failure is None
    assert sink.violations == [], (path.name, sink.violations[0])
    assert lab.ops["ok"] > 100  # the workload ran through the faults
