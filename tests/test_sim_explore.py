"""`labctl sim explore`: the seeded Raft bug (no-figure8) is found and shrunk to a file that
replays it; the correct protocol passes the same schedules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl import explore
from tests.conftest import CLI


def test_generated_schedules_are_valid_scenarios(tmp_path: Path) -> None:
    """Every explore schedule, written out, is a scenario file `scenario run` accepts."""
    from labctl.scenario.format import load

    seen = set()
    for seed in range(1, 30):
        for protocol, n in (("raft", 3), ("epaxos", 5), ("pbft", 4)):
            sc, _ = explore.generate(protocol, n, seed)
            seen.add(sc.description)
            path = explore.write_scenario(sc, tmp_path / f"{protocol}-{seed}.toml")
            back = load(path)
            assert [(s.at, s.fault) for s in back.steps] == [(s.at, s.fault) for s in sc.steps]
    assert len(seen) == 1 + len(explore.NEMESES)  # chaos and every nemesis came up


@pytest.mark.slow
def test_explore_finds_no_figure8_and_shrinks_it(cli: CLI) -> None:
    proc = cli.run("sim", "explore", "-p", "raft", "--nodes", "3", "--mutate", "no-figure8",
                   "--seed", "1", "--runs", "60", "--json", check=False, timeout=900)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    finding = result["findings"][0]
    assert finding["kind"] in ("divergence", "lost-write")
    assert finding["shrunk_fault_steps"] <= 5, finding
    assert finding["replay"]["exit"] == 1 and finding["kind"] in finding["replay"]["kinds"]
    assert "scenario run" in proc.stderr  # the real-process replay is offered, with its caveat
    # The shrunk file reproduces the violation under `labctl sim run`, every time.
    for _ in range(2):
        again = cli.run("sim", "run", finding["scenario"], "--json", check=False, timeout=300)
        assert again.returncode == 1
        kinds = {v["kind"] for v in json.loads(again.stdout)["violations"]}
        assert finding["kind"] in kinds


@pytest.mark.slow
def test_the_correct_protocol_passes_the_same_schedules(cli: CLI) -> None:
    proc = cli.run("sim", "explore", "-p", "raft", "--nodes", "3", "--seed", "1", "--runs",
                   "12", "--json", check=False, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["runs"] == 12 and result["violating_runs"] == 0
