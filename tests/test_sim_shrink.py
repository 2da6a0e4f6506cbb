"""Shrinking: a failing schedule with irrelevant steps shrinks to the relevant ones, and the
file it is written to replays the violation (in the simulator, every time)."""

from __future__ import annotations

import json
from pathlib import Path

from labctl import explore
from labctl.scenario.format import explore_finding, load
from labctl.scenario.library import find
from tests.conftest import CLI

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


def test_scenario_run_on_a_shrunk_file_says_timing_may_not_reproduce(cli: CLI) -> None:
    """A file explore wrote (its header says so) replayed on real processes: `scenario run`
    says first that virtual-time timing may not reproduce there, and then whether the
    violation explore named showed (here it does: naive splits its brain under any cut)."""
    from labctl.scenario.library import resolve

    sc = resolve("split-brain", "naive")
    path = cli.lab_dir / "found-naive-42.toml"
    explore.write_scenario(sc, path, explore.finding_comment("naive", 42, None, "split-brain",
                                                             path))  # fmt: skip
    assert explore_finding(path) == "split-brain"
    assert explore_finding(find("split-brain")) is None  # a file of one's own: nothing said
    proc = cli.run("scenario", "run", str(path), "--json", check=False)
    assert "virtual time" in proc.stderr and "timing may not reproduce" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["explore_finding"] == {"kind": "split-brain", "reproduced": True}
    assert "explore's split-brain showed on real processes" in proc.stderr
