"""Randomized chaos runs with real processes: every fault kind (and, for PBFT, up to f
lying replicas), zero violations. Slow (each run is a real lab for several seconds):
marked `slow`."""

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


def test_pbft_chaos_adds_at_most_f_liars_early() -> None:
    for n, f in ((4, 1), (7, 2)):
        sc = random_scenario("pbft", n, 30.0, seed=3)
        liars = [s for s in sc.steps if s.fault["fault"] == "byzantine"]
        assert len({s.fault["node"] for s in liars}) == f and all(s.at < 1.0 for s in liars)
    assert not [s for s in random_scenario("raft", 5, 30.0, 3).steps
                if s.fault["fault"] == "byzantine"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("protocol", "nodes"), [("raft", "3,5"), ("epaxos", "3,5"), ("pbft", "4,7")]
)
def test_randomized_chaos_finds_zero_violations(cli: CLI, protocol: str, nodes: str) -> None:
    runs = "4" if protocol == "raft" else "2"
    result = cli.run("chaos", "-p", protocol, "--runs", runs, "--duration", "15s", "--nodes",
                     nodes, "--seed", "100", "--json", check=False, timeout=300)  # fmt: skip
    doc = json.loads(result.stdout)
    assert result.returncode == 0, (doc["results"], result.stderr[-2000:])
    assert doc["violating_runs"] == 0 and doc["failed_runs"] == 0
    # Progress, not a figure: with 2 liars out of 7, PBFT's quorum needs every honest
    # replica, so each crash or partition of one halts it until healed.
    least = 30 if protocol == "pbft" else 100
    assert all(r["ops"]["ok"] > least for r in doc["results"]), doc["results"]
