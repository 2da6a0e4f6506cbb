"""EPaxos's named mutations, each shown by a schedule that makes its bug do harm, beside
the same schedule without the mutation (on the in-memory network)."""

from __future__ import annotations

import pytest

from protocols.epaxos.targeted import (
    concurrent_writes,
    net_for,
    three_recoveries,
)
from protocols.targeted import declared, kinds


@pytest.mark.parametrize(("name", "n"), [("small-fast-quorum", 3), ("small-fast-quorum", 5),
                                         ("drop-deps", 3), ("drop-deps", 5)])  # fmt: skip
def test_interfering_commands_execute_in_different_orders(name: str, n: int) -> None:
    net = net_for(name, seed=1, n=n)
    concurrent_writes(net)
    found = kinds(net)
    assert "divergence" in found and found <= declared("epaxos", name), net.violations[:3]


@pytest.mark.parametrize("n", [3, 5])
def test_the_same_writes_agree_on_one_order_without_a_mutation(n: int) -> None:
    net = net_for("", seed=1, n=n)
    concurrent_writes(net)
    assert kinds(net) == set()


def test_single_ballot_lets_a_third_recovery_commit_other_dependencies() -> None:
    """Sutra 2019: with one ballot variable per instance, the recoverer cannot tell the
    attributes accepted in the newest ballot from older ones."""
    problems = three_recoveries("single-ballot")
    assert problems and "instance (0, 1)" in problems[0]
    assert "divergence" in declared("epaxos", "single-ballot")


def test_three_recoveries_commit_one_set_of_attributes_with_vote_ballots() -> None:
    assert three_recoveries("") == []
