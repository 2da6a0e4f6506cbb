"""Randomized chaos runs against Raft with real processes: every fault kind, zero
violations. Slow (each run is a real lab for several seconds): marked `slow`."""

from __future__ import annotations

import json

import pytest

from labctl.chaos import random_scenario
from tests.conftest import CLI


def test_generated_scenarios_are_reproducible_and_healed() -> None:
    a = random_scenario("raft", 5, 30.0, seed=9)
    b = random_scenario("raft", 5, 30.0, seed=9)
    assert [(s.at, s.fault) for s in a.steps] == [(s.at, s.fault) for s in b.steps]
    assert a.steps[-1].fault == {"fault": "heal"} and a.steps[-1].at <= 27.0
    kills = [s.fault["node"] for s in a.steps if s.fault["fault"] == "kill"]
    restarts = [s.fault["node"] for s in a.steps if s.fault["fault"] == "restart"]
    assert sorted(kills) == sorted(restarts)


@pytest.mark.slow
def test_raft_survives_randomized_chaos_with_zero_violations(cli: CLI) -> None:
    result = cli.run("chaos", "-p", "raft", "--runs", "4", "--duration", "15s", "--nodes", "3,5",
                     "--seed", "100", "--json", check=False, timeout=300)  # fmt: skip
    doc = json.loads(result.stdout)
    assert result.returncode == 0, (doc["results"], result.stderr[-2000:])
    assert doc["violating_runs"] == 0 and doc["failed_runs"] == 0
    assert all(r["ops"]["ok"] > 100 for r in doc["results"])
