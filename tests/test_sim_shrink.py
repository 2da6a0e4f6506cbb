"""Shrinking: a failing schedule with irrelevant steps shrinks to the relevant ones, and the
file it is written to replays the violation (in the simulator, every time)."""

from __future__ import annotations

from pathlib import Path

from labctl import explore
from labctl.scenario.format import load

# The seed's split brain (naive: the leader cut off promotes a second leader) buried in
# steps that have nothing to do with it.
NOISY = """
name = "noisy-split-brain"
protocol = "naive"
nodes = 3
seed = 4
duration = "8s"

[workload]
kind = "orders"
rate = 60
clients = 3
target = "any"

[[step]]
at = "0.5s"
fault = "clock"
node = "r2"
drift = 0.01

[[step]]
at = "0.7s"
fault = "delay"
from = "r1"
to = "r2"
ms = 3

[[step]]
at = "1s"
fault = "disk"
node = "r1"
fsync = "1ms"

[[step]]
at = "1.5s"
fault = "partition"
from = ["leader"]
to = ["followers"]

[[step]]
at = "4s"
fault = "duplicate"
from = "r2"
to = "r1"
p = 0.1

[[step]]
at = "5s"
fault = "heal"

[[step]]
at = "6s"
fault = "pause"
node = "r2"
for = "200ms"

[expect]
safe = true
"""


def test_irrelevant_steps_are_dropped_and_the_file_replays(tmp_path: Path) -> None:
    path = tmp_path / "noisy.toml"
    path.write_text(NOISY)
    sc = load(path)
    before = explore.check(sc)
    assert "split-brain" in before.kinds
    small, runs = explore.shrink(sc, "split-brain", budget_s=120)
    assert runs > 1
    faults = [s.fault["fault"] for s in small.steps]
    assert faults == ["partition"], faults  # the cut is all it takes
    assert small.duration < sc.duration
    assert small.workload is not None and small.workload["rate"] < 60
    # Written out and read back, the shrunk scenario shows the same violation, every time.
    out = explore.write_scenario(small, tmp_path / "small.toml", "shrunk")
    again = load(out)
    for _ in range(2):
        assert "split-brain" in explore.check(again).kinds


def test_a_scenario_file_round_trips() -> None:
    from labctl.scenario.library import find

    sc = load(find("pbft-equivocation"))
    text = explore.scenario_toml(sc)
    tmp = Path(__file__).parent / ".roundtrip.toml"
    try:
        tmp.write_text(text)
        back = load(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    assert [(s.at, s.fault) for s in back.steps] == [(s.at, s.fault) for s in sc.steps]
    assert back.workload == sc.workload and back.expect == sc.expect
    assert (back.nodes, back.seed, back.duration) == (sc.nodes, sc.seed, sc.duration)
