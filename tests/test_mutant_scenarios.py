"""Every catalogue mutation's switch, caught by the lab's own checkers in the simulator.

Each file in tests/mutant_scenarios/ is what `sim explore --mutate NAME` found and shrank
(labctl/benchmarks/mutants.py --out wrote it; the header names the seed and nemesis). It
names no mutation: run with the mutation switched on, the checkers the lab runs live
(labctl/simrun.py's CheckingSink) must report one of the kinds the mutation declares;
run without it, the same schedule must be clean. The targeted schedules on the in-memory
network (tests/test_*_mutations.py) show the same bugs with simnet's own checks; these
show them the way a user sees them, through `labctl sim run`.

A shrunk schedule reproduces in the simulator every time, but only for the code it was
found on: if a protocol's timing changes and one stops showing its bug, explore it again
(`python -m labctl.benchmarks.mutants --out tests/mutant_scenarios PROTOCOL:NAME`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import explore, mutants
from labctl.scenario.format import load, set_mutation

HERE = Path(__file__).parent / "mutant_scenarios"
FILES = sorted(HERE.glob("*.toml"))
# Runs that take more than a few seconds of CPU in the simulator (PBFT's signatures).
SLOW = {"pbft-floor-quorum", "pbft-skip-verify", "pbft-view-change-no-proof"}


def _case(path: Path) -> object:
    marks = [pytest.mark.slow] if path.stem in SLOW else []
    return pytest.param(path, id=path.stem, marks=marks)


def _mutation(path: Path, protocol: str) -> str:
    name = path.stem.removeprefix(f"{protocol}-")
    mutants.resolve(protocol, name)  # the file is named for a mutation that exists
    return name


def test_every_protocol_mutation_has_its_scenario() -> None:
    import protocols

    have = {p.stem for p in FILES}
    for protocol in ("raft", "epaxos", "pbft"):
        for m in protocols.get(protocol).mutations:
            assert f"{protocol}-{m.name}" in have, m.name


@pytest.mark.parametrize("path", [_case(p) for p in FILES])
def test_the_mutation_is_caught_and_the_schedule_is_clean_without_it(path: Path) -> None:
    sc = load(path)
    name = _mutation(path, sc.protocol)
    assert "mutate" not in sc.options and not sc.mutate
    clean = explore.check(sc)
    assert clean.kinds == [], (path.name, clean.first)
    set_mutation(sc, name)
    found = explore.check(sc)
    declared = mutants.resolve(sc.protocol, name).violations
    assert set(found.kinds) & set(declared), (path.name, found.kinds, declared)
    assert explore.fault_steps(sc) <= 5, path.name
