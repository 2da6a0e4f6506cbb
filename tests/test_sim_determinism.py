"""The simulator's contract: the same code, scenario and seed give byte-identical events and
history (and message trace), in one process and across processes with different
PYTHONHASHSEED."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Every fault kind the vocabulary has that the protocol takes, and a workload with every
# read mode, so that whatever could leak set order or the wall clock gets exercised.
EVERYTHING = """
name = "everything"
protocol = "raft"
nodes = 5
seed = 9
duration = "4.5s"

[options]
snapshot_threshold = 200
catch_up_entries = 50

[broker]
fencing = true

[workload]
kind = "kv"
rate = 100
clients = 3
reads = ["log", "quorum", "lease"]

[[step]]
at = "0.6s"
fault = "partition"
from = "leader"
to = "r3"
oneway = true

[[step]]
at = "0.8s"
fault = "delay"
from = ["r1", "r2"]
to = "all"
ms = 30
jitter = 10

[[step]]
at = "1s"
fault = "loss"
from = "r4"
to = "all"
p = 0.3

[[step]]
at = "1.2s"
fault = "duplicate"
from = "all"
to = "all"
p = 0.2

[[step]]
at = "1.5s"
fault = "pause"
node = "leader"
for = "400ms"

[[step]]
at = "2s"
fault = "kill"
node = "r2"

[[step]]
at = "2.2s"
fault = "clock"
node = "r0"
drift = 0.04

[[step]]
at = "2.4s"
fault = "disk"
node = "leader"
fsync = "5ms"
stall = "300ms"

[[step]]
at = "2.6s"
fault = "partition"
shape = "majorities-ring"

[[step]]
at = "3.2s"
fault = "heal"

[[step]]
at = "3.3s"
fault = "restart"
node = "r2"

[[step]]
at = "3.5s"
fault = "isolate"
node = "leader"

[[step]]
at = "4s"
fault = "heal"

[expect]
safe = true
"""

PBFT = """
name = "pbft-liar"
protocol = "pbft"
nodes = 4
seed = 3
duration = "4s"

[workload]
kind = "orders"
rate = 80
clients = 2

[[step]]
at = "1s"
fault = "byzantine"
node = "primary"
mode = "equivocate"

[[step]]
at = "2s"
fault = "kill"
node = "r3"

[[step]]
at = "2.5s"
fault = "restart"
node = "r3"

[expect]
safe = true
"""

# Runs one scenario file in the simulator and prints the sha256 of events + history + trace.
SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    from pathlib import Path
    from labctl import simrun
    from labctl.scenario.format import load
    code, summary = simrun.execute(load(sys.argv[1]), sys.argv[2], talk=False)
    run = Path(summary["run_dir"])
    h = hashlib.sha256()
    for name in ("events.jsonl", "history.jsonl", "trace.bin"):
        h.update((run / name).read_bytes())
    print(code, h.hexdigest(), summary["ops"]["ok"])
    """
)


def _run(path: Path, lab: Path, hashseed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(path), str(lab)], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("text", [EVERYTHING, PBFT], ids=["raft-every-fault", "pbft-byzantine"])
def test_same_seed_same_bytes_across_processes_and_hash_seeds(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text)
    first = _run(path, tmp_path / "a", "0")
    again = _run(path, tmp_path / "b", "0")
    other = _run(path, tmp_path / "c", "12345")
    assert first == again == other
    code, _, ok = first.split()
    assert code == "0" and int(ok) > 50  # safe, and operations completed under the faults


def test_another_seed_is_another_run(tmp_path: Path) -> None:
    from labctl import simrun
    from labctl.scenario.format import load

    digests = []
    for seed in (9, 10):
        path = tmp_path / f"s{seed}.toml"
        path.write_text(EVERYTHING.replace("seed = 9", f"seed = {seed}"))
        _, summary = simrun.execute(load(path), str(tmp_path / f"lab{seed}"), talk=False)
        run = Path(summary["run_dir"])
        digests.append(hashlib.sha256((run / "events.jsonl").read_bytes()).hexdigest())
    assert digests[0] != digests[1]


def test_a_busy_machine_changes_nothing_in_a_simulated_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The linearizability search is bounded in steps and memory in the simulator, never by
    the wall clock: on a machine so busy that every clock reading is 10 s later, a run
    whose stale lease reads are nonlinearizable reports the same violations at the same
    virtual times, byte for byte, as on an idle machine."""
    import time

    from labctl import simrun
    from labctl.checkers import linearizability
    from labctl.scenario.library import resolve

    def run(lab: Path) -> tuple[str, list[str]]:
        _, summary = simrun.execute(resolve("clock-skew-lease", "raft"), str(lab), talk=False)
        events = (Path(summary["run_dir"]) / "events.jsonl").read_bytes()
        kinds = [v["kind"] for v in summary["violations"]]
        return hashlib.sha256(events).hexdigest(), kinds

    idle = run(tmp_path / "idle")
    assert "nonlinearizable" in idle[1]  # found live: the search ran, and found it
    clock = iter(range(0, 10**9, 10))
    monkeypatch.setattr(linearizability, "time", type("Busy", (), {
        "monotonic": staticmethod(lambda: float(next(clock))),
        "perf_counter": staticmethod(time.perf_counter),
    }))  # fmt: skip
    assert run(tmp_path / "busy") == idle


def test_status_telemetry_reads_the_run_and_changes_nothing_in_it(tmp_path: Path) -> None:
    """node.status (every replica's, as `sim run` records it) only reads the nodes: without
    it (explore's runs, which keep no record) every other event, the history and the
    verdict are the same, byte for byte."""
    from labctl import simrun
    from labctl.scenario.format import load

    path = tmp_path / "s.toml"
    path.write_text(EVERYTHING)

    class Recorder(simrun.CheckingSink):
        def __init__(self) -> None:
            super().__init__(load(path))
            self.records: list[str] = []

        def event(self, rec: dict) -> None:
            self.records.append(json.dumps(rec, sort_keys=True))
            super().event(rec)

        def history(self, rec: dict) -> None:
            self.records.append(json.dumps(rec, sort_keys=True))
            super().history(rec)

    sinks = []
    for status in (True, False):
        sink = Recorder()
        simrun.simulate(load(path), sink, status=status)
        sinks.append(sink)
    with_status, without = sinks
    published = [r for r in with_status.records if '"kind": "node.status"' in r]
    assert {json.loads(r)["src"] for r in published} == {f"r{i}" for i in range(5)}
    assert not any('"kind": "node.status"' in r for r in without.records)
    rest = [r for r in with_status.records if '"kind": "node.status"' not in r]
    assert rest == without.records
    assert with_status.violations == without.violations == []


# Runs `sim explore`'s generated schedules (chaos and nemeses, the recovery race among
# them) and prints one sha256 of every event and history record the checkers were fed.
EXPLORE = textwrap.dedent(
    """
    import hashlib, json, sys
    import protocols
    from labctl import explore, simrun
    h = hashlib.sha256()
    class Hashing(simrun.CheckingSink):
        def event(self, rec):
            h.update(json.dumps(rec, sort_keys=True, default=str).encode())
            super().event(rec)
        def history(self, rec):
            h.update(json.dumps(rec, sort_keys=True, default=str).encode())
            super().history(rec)
    simrun.CheckingSink = Hashing
    protocol, first, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sizes = protocols.get(protocol).test_sizes
    for i in range(runs):
        sc, director = explore.generate(protocol, sizes[i % len(sizes)], first + i)
        h.update(explore.scenario_toml(sc).encode())
        explore.check(sc, director)
    print(h.hexdigest())
    """
)


@pytest.mark.parametrize("protocol", ["raft", "epaxos", "pbft"])
def test_explored_schedules_are_the_same_bytes_across_hash_seeds(protocol: str) -> None:
    # EPaxos's recovery sent its TryPreAccepts in a set's order: a run's message timings,
    # and so its schedule, changed with PYTHONHASHSEED (seed 5009, the recovery race).
    def digest(hashseed: str) -> str:
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        out = subprocess.run([sys.executable, "-c", EXPLORE, protocol, "5008", "2"], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert digest("1") == digest("2") == digest("3")
